import { setTimeout as sleep } from 'node:timers/promises';

/** An item failing again and again (a checksum mismatch, a full disk) is tried at most this seldom. */
const MAX_RETRY_WAIT_MS = 60 * 60 * 1000;

/**
 * When to try a failing item (a message, a file) again: after one poll interval, then two,
 * four, ... (at most an hour), so one that cannot be handled is not redone in full at every poll.
 */
export class RetrySchedule {
  readonly #intervalMs: number;
  readonly #failing = new Map<string, { readonly failures: number; readonly notBefore: number }>();

  constructor(intervalMs: number) {
    this.#intervalMs = intervalMs;
  }

  /** Whether the item is still waiting out its backoff. */
  waiting(key: string): boolean {
    return (this.#failing.get(key)?.notBefore ?? 0) > Date.now();
  }

  failed(key: string): void {
    const failures = (this.#failing.get(key)?.failures ?? 0) + 1;
    this.#failing.set(key, { failures, notBefore: Date.now() + Math.min(this.#intervalMs * 2 ** (failures - 1), MAX_RETRY_WAIT_MS) });
  }

  /** Done with (handled, or gone): a later failure starts the backoff afresh. */
  forget(key: string): void {
    this.#failing.delete(key);
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
  /** The pass could not run (the server away, the folder unreadable): tried again at the next poll. */
  readonly onPassFailed: (error: unknown) => void;
}

/** Runs `pass` again and again, `intervalMs` apart, until the signal stops it. */
export async function pollUntilStopped(pass: () => Promise<unknown>, options: PollingOptions): Promise<void> {
  while (!options.signal.aborted) {
    try {
      await pass();
    } catch (error) {
      options.onPassFailed(error);
    }
    await sleep(options.intervalMs, undefined, { signal: options.signal }).catch(() => undefined);
  }
}
