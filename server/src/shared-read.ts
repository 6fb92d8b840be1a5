/**
 * A read for many askers who may ask as often as they like (probes, scrapes: any certificate of
 * the CA): askers at once share one read, and a result it keeps stands for `keptMs` after it, by
 * `now` (a clock set back meanwhile ends it). A read that fails, or a result not to keep, stands
 * for nobody: the next asker reads again.
 */
export function sharedRead<T>(
  read: () => Promise<T>,
  keptMs: number,
  options: { readonly now?: () => number; readonly keeps?: (result: T) => boolean } = {},
): () => Promise<T> {
  const { now = () => performance.now(), keeps = () => true } = options;
  let reading: Promise<T> | undefined;
  let kept: { readonly result: T; readonly at: number } | undefined;
  return () => {
    const age = kept === undefined ? -1 : now() - kept.at;
    if (kept !== undefined && age >= 0 && age < keptMs) return Promise.resolve(kept.result);
    reading ??= read()
      .then((result) => {
        kept = keeps(result) ? { result, at: now() } : undefined;
        return result;
      })
      .finally(() => (reading = undefined));
    return reading;
  };
}
