import { setTimeout as sleep } from 'node:timers/promises';

/** An item failing again and again (a checksum mismatch, a full disk) is tried at most this seldom. */
const MAX_RETRY_WAIT_MS = 60 * 60 * 1000;
/** A watch whose passes keep failing as a whole waits at most this long (or its interval, if longer) between them. */
const MAX_PASS_WAIT_MS = 5 * 60 * 1000;

/**
 * The wait before the next pass after `failures` passes in a row failed as a whole (the server
 * away, the credentials refused): the interval, then twice, four times, ... up to five minutes,
 * so that a watch does not repeat the same failure at every poll for as long as it lasts.
 */
export function waitAfterPasses(intervalMs: number, failures: number): number {
  if (failures === 0) return intervalMs;
  return Math.max(intervalMs, Math.min(intervalMs * 2 ** (failures - 1), MAX_PASS_WAIT_MS));
}

/**
 * When to try a failing item (a message, a file) again: after one poll interval, then two,
 * four, ... (at most an hour), so one that cannot be handled is not redone in full at every poll.
 * Timed by the monotonic clock: a wall clock set back (NTP mending one a month fast) would hold an
 * item for as long as it went back.
 */
export class RetrySchedule {
  readonly #intervalMs: number;
  readonly #failing = new Map<string, { readonly failures: number; readonly notBefore: number }>();

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /** Whether the item is still waiting out its backoff. */
  waiting(key: string): boolean {
    return (this.#failing.get(key)?.notBefore ?? 0) > performance.now();
  }

  failed(key: string): void {
    const failures = (this.#failing.get(key)?.failures ?? 0) + 1;
    this.#failing.set(key, { failures, notBefore: performance.now() + Math.min(this.#intervalMs * 2 ** (failures - 1), MAX_RETRY_WAIT_MS) });
  }

  /** Not to be tried for `ms` (nor looked at meanwhile), whatever its backoff would be. */
  holdFor(key: string, ms: number): void {
    this.#failing.set(key, { failures: this.#failing.get(key)?.failures ?? 0, notBefore: performance.now() + ms });
  }

  /** Done with (handled, or gone): a later failure starts the backoff afresh. */
  forget(key: string): void {
    this.#failing.delete(key);
  }

  /** Whether any item is failing (waiting out its backoff, or due again). */
  get anyFailing(): boolean {
    return this.#failing.size > 0;
  }

  /** Forgets every item not among those present now (handled elsewhere, or removed). */
  keepOnly(present: Iterable<string>): void {
    const kept = new Set(present);
    for (const key of this.#failing.keys()) if (!kept.has(key)) this.#failing.delete(key);
  }
}

/** How a watch polls: every `intervalMs` until the signal stops it, reporting a pass that fails as a whole. */
export interface PollingOptions {
  readonly intervalMs: number;
  readonly signal: AbortSignal;
  /** The pass could not run (the server away, the folder unreadable): tried again after `retryInMs`. */
  readonly onPassFailed: (error: unknown, retryInMs: number) => void;
  /** What is due before a pass (the daily handshake); its failure is the pass's. */
  readonly beforePass?: () => Promise<void>;
  /** An item failed as every item may (403, 429, 503: see PassEnd), in a pass that went on: the credentials may be renewed on disk meanwhile. */
  readonly onItemRefused?: () => void;
}

/** Runs `pass` again and again, `intervalMs` apart (longer while passes keep failing), until the signal stops it. */
export async function pollUntilStopped(pass: () => Promise<unknown>, options: PollingOptions): Promise<void> {
  let failures = 0;
  while (!options.signal.aborted) {
    try {
      await options.beforePass?.();
      await pass();
      failures = 0;
    } catch (error) {
      // A pass the stop cut short (its request aborted) did not fail: the watch is ending.
      if (options.signal.aborted) break;
      failures += 1;
      options.onPassFailed(error, waitAfterPasses(options.intervalMs, failures));
    }
    await sleep(waitAfterPasses(options.intervalMs, failures), undefined, { signal: options.signal }).catch(() => undefined);
  }
}
