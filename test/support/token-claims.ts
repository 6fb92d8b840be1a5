import { waitFor } from '../../scripts/services/processes.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import type { RedisClient } from '../../server/src/store/redis-client.ts';
import { parseAuthorizationHeader } from '../../shared/src/protocol/index.ts';

/**
 * Waits (up to a generous deadline, for a loaded machine) until the server has claimed this
 * token: the request that carries it has been authenticated and is in the server's hands. A test
 * that cuts a request off, or stops the server under it, waits for this first; after a fixed pause
 * the request may not have reached the server yet, and the test would prove nothing.
 */
export function tokenClaimed(redis: RedisClient, redisPrefix: string, authorization: string): Promise<boolean> {
  return claimHeld(redis, redisPrefix, authorization, true);
}

/**
 * Waits until the server has given this token's claim back: it has seen its request end unserved
 * (a client that went away), and is done with it.
 */
export function tokenGivenBack(redis: RedisClient, redisPrefix: string, authorization: string): Promise<boolean> {
  return claimHeld(redis, redisPrefix, authorization, false);
}

function claimHeld(redis: RedisClient, redisPrefix: string, authorization: string, held: boolean): Promise<boolean> {
  const token = parseAuthorizationHeader(authorization);
  if (!token) throw new Error(`not a token: ${authorization}`);
  const key = redisKeys(redisPrefix).usedToken(token.mailboxId, token.nonce, token.nonceCount);
  return waitFor(async () => ((await redis.exists(key)) === 1) === held, 30_000, 20);
}
