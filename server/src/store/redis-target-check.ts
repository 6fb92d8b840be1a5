import { Cluster } from 'ioredis';
import { ConfigError } from '../config.ts';
import { describeRedisTarget, infoSection, type RedisClient, type RedisTarget } from './redis-client.ts';

/**
 * Refuses a standalone connection to what the settings do not say: a Redis Cluster's node (it
 * answers most keys with MOVED; ioredis refuses the other way round itself), or a database
 * that Redis does not have (ioredis only reports the failed SELECT, and goes on in database 0).
 */
export async function refuseRedisOtherThanSet(redis: RedisClient, settings: RedisTarget): Promise<void> {
  if (redis instanceof Cluster) return;
  const where = describeRedisTarget(settings);
  if (/^cluster_enabled:1/m.test((await infoSection(redis, 'cluster')) ?? '')) {
    throw new ConfigError(`Redis at ${where} is a node of a Redis Cluster: set MESHBOX_REDIS_CLUSTER=true (MESHBOX_REDIS_URL: its nodes, comma-separated)`);
  }
  const database = redis.options.db ?? 0;
  if (database !== 0) {
    await redis.select(database).catch((error: unknown) => {
      throw new ConfigError(`Redis at ${where} has no database ${database} (MESHBOX_REDIS_URL): ${(error as Error).message}`);
    });
  }
}
