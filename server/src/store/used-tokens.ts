import type { RedisClient } from './redis-client.ts';
import type { AuthToken } from '../../../shared/src/protocol/index.ts';
import type { RedisKeys } from './keys.ts';

/** Authorization tokens already used, kept as long as their timestamp could still be accepted. */
export class UsedTokenStore {
  readonly #redis: RedisClient;
  readonly #keys: RedisKeys;

  constructor(redis: RedisClient, keys: RedisKeys) {
    this.#redis = redis;
    this.#keys = keys;
  }

  /** Claims a token for one request; false when it was claimed before. */
  async claim(token: AuthToken, keepForMs: number): Promise<boolean> {
    const key = this.#keys.usedToken(token.mailboxId, token.nonce, token.nonceCount);
    return (await this.#redis.set(key, '1', 'PX', keepForMs, 'NX')) === 'OK';
  }

  /** Gives a claim back, so a client's identical retry is accepted. */
  async release(token: AuthToken): Promise<void> {
    await this.#redis.del(this.#keys.usedToken(token.mailboxId, token.nonce, token.nonceCount));
  }
}
