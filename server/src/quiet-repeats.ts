/**
 * What logs a failure that can repeat in a tight loop (a handshake refused to a client retrying,
 * BullMQ asking a Redis that refuses every write thousands of times a second): a line per reason
 * at most once an interval, then how many more came meanwhile, so the log cannot fill its disk.
 */
export type QuietLog = (reason: string, logFirst: () => void, logRepeats: (repeats: number) => void) => void;

export function quietRepeats(intervalMs: number): QuietLog {
  /** Reasons logged within the interval, with how many have come since. */
  const quiet = new Map<string, { repeats: number }>();
  return (reason, logFirst, logRepeats) => {
    const window = quiet.get(reason);
    if (window) {
      window.repeats += 1;
      return;
    }
    const opened = { repeats: 0 };
    quiet.set(reason, opened);
    logFirst();
    setTimeout(() => {
      quiet.delete(reason);
      if (opened.repeats > 0) logRepeats(opened.repeats);
    }, intervalMs).unref();
  };
}
