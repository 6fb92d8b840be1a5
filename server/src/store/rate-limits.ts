import type { RedisClient } from './redis-client.ts';
import type { RedisKeys } from './keys.ts';
import { LuaScript } from './lua-script.ts';

const countRequestScript = new LuaScript('count-request');

/** Request counts per mailbox (or certificate) in one-second windows, and failed logins per certificate in one-minute windows, shared by every server process. */
export class RateLimitStore {
  readonly #redis: RedisClient;
  readonly #keys: RedisKeys;

  constructor(redis: RedisClient, keys: RedisKeys) {
    this.#redis = redis;
    this.#keys = keys;
  }

  /** Counts a request (as `weight` requests, for a costly one; -1 gives one back) in the current second and returns the count so far. */
  async countRequest(mailboxId: string, now: Date, weight = 1): Promise<number> {
    const key = this.#keys.requestCount(mailboxId, Math.floor(now.getTime() / 1000));
    // One script rather than MULTI/INCR/EXPIRE/EXEC: one command on every request, sent with the others.
    return Number(await countRequestScript.run(this.#redis, [key], [2, weight]));
  }

  /** Counts a failed login of a certificate in `minute` (since the epoch) and returns the count so far. */
  async countLoginFailure(certificateName: string, minute: number): Promise<number> {
    const key = this.#keys.loginFailures(certificateName, minute);
    return Number(await countRequestScript.run(this.#redis, [key], [120, 1]));
  }
}
