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

/**
 * What a failure is, for counting its repeats: its code and message with addresses and numbers
 * left out, so that a Redis Cluster's "MOVED 14860 127.0.0.1:33909", one per slot, or a
 * connection's port, is one reason; and distinct causes ("CLUSTERDOWN", "Connection is closed"),
 * though worded alike at first, are not.
 */
export function failureReason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const message = error instanceof Error ? error.message : String(error);
  const plain = message
    .replace(/\b\d{1,3}(\.\d{1,3}){3}(:\d+)?\b/g, '<address>')
    .replace(/\d+/g, 'N')
    .slice(0, 300);
  return typeof code === 'string' && !plain.includes(code) ? `${code}: ${plain}` : plain;
}
