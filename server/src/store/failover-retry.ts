import { setTimeout as sleep } from 'node:timers/promises';

/**
 * How often a Redis operation is sent again across a failover, and the pauses between (doubled
 * each time, to a cap): the connection is made anew meanwhile (redis-client.ts), and the address
 * may take seconds to lead to the new primary. About 7 s in all.
 */
const TRIES = 7;
const FIRST_PAUSE_MS = 200;
const MAX_PAUSE_MS = 2000;

/** Runs `operation`, and again while it fails with an error `retryOn` accepts, up to TRIES times. */
export async function acrossFailover<T>(operation: () => Promise<T>, retryOn: (error: unknown) => boolean): Promise<T> {
  for (let tries = 1, pauseMs = FIRST_PAUSE_MS; ; tries += 1, pauseMs = Math.min(2 * pauseMs, MAX_PAUSE_MS)) {
    try {
      return await operation();
    } catch (error) {
      if (tries === TRIES || !retryOn(error)) throw error;
      await sleep(pauseMs);
    }
  }
}
