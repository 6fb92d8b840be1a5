import { hash } from 'node:crypto';
import { acrossFailover } from './failover-retry.ts';
import { refusedByReplica, type RedisClient } from './redis-client.ts';
import type { AuthToken } from '../../../shared/src/protocol/index.ts';
import type { RedisKeys } from './keys.ts';

/** A request a token is used for: what and when. */
export interface TokenUse {
  /** Method, path and query, e.g. `GET /messageexchange/X/inbox?max_results=10` (and, for a send, what identifies its message). */
  readonly request: string;
  readonly at: Date;
  /** The id of the message the request is to create (a send). */
  readonly creates?: string | undefined;
}

/** What a token was used for before. */
export interface EarlierUse {
  /** The very same request as now. */
  readonly sameRequest: boolean;
  readonly at: Date;
  /** The id of the message that use was to create (whether it did, the message store tells). */
  readonly creates: string | undefined;
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
    const key = this.#key(token);
    const digest = requestDigest(use.request);
    // When, the request by its digest, and what it creates.
    const value = [use.at.getTime(), digest, ...(use.creates === undefined ? [] : [use.creates])].join(' ');
    const claimNow = async (): Promise<boolean> => (await this.#redis.set(key, value, 'PX', keepForMs, 'NX')) === 'OK';
    if (await claimNow()) return undefined;
    // Only a token used before costs these round trips (a client's retry, or a replay).
    const stored = await this.#redis.get(key);
    // Given back between the two (its request was not served): it is free.
    if (stored === null) return (await claimNow()) ? undefined : { sameRequest: false, at: use.at, creates: undefined };
    // This claim's own value: its SET ran twice (ioredis sends a command again when the
    // connection broke before its answer came). A send's value names the fresh id it creates,
    // so only the same request can match; any other request matching it may be repeated anyway.
    if (stored === value) return undefined;
    const [at, storedDigest, creates] = stored.split(' ');
    return { sameRequest: storedDigest === digest, at: new Date(Number(at)), creates };
  }

  /** Gives a claim back, so a client's identical retry is accepted; sent again when a Redis just made a replica refuses it (a failover). */
  async release(token: AuthToken): Promise<void> {
    await acrossFailover(() => this.#redis.del(this.#key(token)), refusedByReplica);
  }

  #key(token: AuthToken): string {
    return this.#keys.usedToken(token.mailboxId, token.nonce, token.nonceCount);
  }
}

/** A path may be long, and every used token is kept for hours. */
function requestDigest(request: string): string {
  return hash('sha256', request, 'base64url').slice(0, 22);
}
