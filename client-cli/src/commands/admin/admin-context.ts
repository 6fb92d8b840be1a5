import { Redis } from 'ioredis';
import { resolveBackends } from '../../../../server/src/backends.ts';
import { loadBackendConfig } from '../../../../server/src/config.ts';
import { redisKeys } from '../../../../server/src/store/keys.ts';
import { MailboxStore } from '../../../../server/src/store/mailboxes.ts';

/**
 * Admin commands act on the deployment's own Redis (MESHBOX_REDIS_URL, or the local
 * development services), the same state the server reads.
 */
export async function withMailboxStore<T>(action: (mailboxes: MailboxStore) => Promise<T>): Promise<T> {
  const config = await resolveBackends(loadBackendConfig());
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 2, lazyConnect: true });
  try {
    await redis.connect();
    return await action(new MailboxStore(redis, redisKeys(config.redisPrefix)));
  } finally {
    redis.disconnect();
  }
}
