import type { RedisClient } from './redis-client.ts';
import type { AuthToken } from '../../../shared/src/protocol/index.ts';
import type { RedisKeys } from './keys.ts';

/** The request a token was first used for: what and when. */
export interface FirstUse {
  /** Method and path, e.g. `GET /messageexchange/X/inbox/ID`. */
  readonly request: string;
  readonly at: Date;
}

/** Authorization tokens already used, kept as long as their timestamp could still be accepted. */
export class UsedTokenStore {
  readonly #redis: RedisClient;
  readonly #keys: RedisKeys;

  constructor(redis: RedisClient, keys: RedisKeys) {
    this.#redis = redis;
    this.#keys = keys;
  }

  /** Claims a token for one request; when it was claimed before, says for what (undefined: claimed now). */
  async claim(token: AuthToken, use: FirstUse, keepForMs: number): Promise<FirstUse | undefined> {
    const key = this.#keys.usedToken(token.mailboxId, token.nonce, token.nonceCount);
    if ((await this.#redis.set(key, `${use.at.getTime()} ${use.request}`, 'PX', keepForMs, 'NX')) === 'OK') return undefined;
    // Only a token used before costs this second round trip (a client's retry, or a replay).
    const stored = (await this.#redis.get(key)) ?? '';
    const space = stored.indexOf(' ');
    return { request: stored.slice(space + 1), at: new Date(Number(stored.slice(0, space))) };
  }

  /** Gives a claim back, so a client's identical retry is accepted. */
  async release(token: AuthToken): Promise<void> {
    await this.#redis.del(this.#keys.usedToken(token.mailboxId, token.nonce, token.nonceCount));
  }
}
