import { createHash } from 'node:crypto';
import type { RedisClient } from './redis-client.ts';
import type { AuthToken } from '../../../shared/src/protocol/index.ts';
import type { RedisKeys } from './keys.ts';

/** A request a token is used for: what and when. */
export interface TokenUse {
  /** Method and path, e.g. `GET /messageexchange/X/inbox/ID`. */
  readonly request: string;
  readonly at: Date;
}

/** What a token was used for before. */
export interface EarlierUse {
  /** The very same method and path as now. */
  readonly sameRequest: boolean;
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
  async claim(token: AuthToken, use: TokenUse, keepForMs: number): Promise<EarlierUse | undefined> {
    const key = this.#keys.usedToken(token.mailboxId, token.nonce, token.nonceCount);
    // The request by its digest: a path may be long, and every used token is kept for hours.
    const digest = createHash('sha256').update(use.request).digest('base64url').slice(0, 22);
    const value = `${use.at.getTime()} ${digest}`;
    const claimNow = async (): Promise<boolean> => (await this.#redis.set(key, value, 'PX', keepForMs, 'NX')) === 'OK';
    if (await claimNow()) return undefined;
    // Only a token used before costs these round trips (a client's retry, or a replay).
    const stored = await this.#redis.get(key);
    // Given back between the two (its request was not served): it is free.
    if (stored === null) return (await claimNow()) ? undefined : { sameRequest: false, at: use.at };
    const [at, storedDigest] = stored.split(' ');
    return { sameRequest: storedDigest === digest, at: new Date(Number(at)) };
  }

  /** Gives a claim back, so a client's identical retry is accepted. */
  async release(token: AuthToken): Promise<void> {
    await this.#redis.del(this.#keys.usedToken(token.mailboxId, token.nonce, token.nonceCount));
  }
}
