/** How long start-up (the server's, an admin command's) waits for a backend to answer before it gives up, saying which. */
export const START_UP_ANSWER_MS = 20_000;

/** The promise's outcome, or a rejection once `ms` have passed without one (a backend that hangs). */
export function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref())]);
}
