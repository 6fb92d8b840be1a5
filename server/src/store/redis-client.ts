import { Cluster, Redis, type RedisOptions } from 'ioredis';

/** A standalone Redis or a Redis Cluster: the stores only use commands that work on both. */
export type RedisClient = Redis | Cluster;

export interface RedisTarget {
  /** One redis:// or rediss:// URL; for a cluster, one or more seed nodes separated by commas. */
  readonly redisUrl: string;
  readonly redisCluster: boolean;
}

/** Options both kinds take; on a cluster the per-node ones apply to each node's connection. */
export type RedisClientOptions = Pick<RedisOptions, 'maxRetriesPerRequest' | 'enableOfflineQueue' | 'enableAutoPipelining' | 'lazyConnect'>;

export function splitRedisUrls(redisUrl: string): string[] {
  return redisUrl
    .split(',')
    .map((url) => url.trim())
    .filter((url) => url !== '');
}

/** Connects to the target; a cluster learns its other nodes and the slot map from the seeds. */
export function openRedis(target: RedisTarget, options: RedisClientOptions = {}): RedisClient {
  const [first, ...rest] = splitRedisUrls(target.redisUrl);
  if (!first) throw new Error('no Redis URL');
  if (!target.redisCluster) return new Redis(first, options);
  const seeds = [first, ...rest].map((url) => new URL(url));
  const credentials = seeds[0]!;
  const { maxRetriesPerRequest, enableOfflineQueue, enableAutoPipelining, lazyConnect } = options;
  return new Cluster(
    seeds.map((url) => ({ host: url.hostname, port: Number(url.port || 6379) })),
    {
      ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
      ...(enableAutoPipelining === undefined ? {} : { enableAutoPipelining }),
      ...(lazyConnect === undefined ? {} : { lazyConnect }),
      redisOptions: {
        ...(maxRetriesPerRequest === undefined ? {} : { maxRetriesPerRequest }),
        ...(credentials.username ? { username: decodeURIComponent(credentials.username) } : {}),
        ...(credentials.password ? { password: decodeURIComponent(credentials.password) } : {}),
        ...(credentials.protocol === 'rediss:' ? { tls: {} } : {}),
      },
    },
  );
}

/** The target without credentials, for logs. */
export function describeRedisTarget(target: RedisTarget): string {
  const nodes = splitRedisUrls(target.redisUrl).map((each) => {
    const url = new URL(each);
    return `${url.protocol}//${url.host}`;
  });
  return `${target.redisCluster ? 'cluster ' : ''}${nodes.join(',')}`;
}

/**
 * Whether Redis can serve every key: on a cluster, each master answers and the cluster says it
 * is whole (a PING reaches one node only, which says nothing of the slots the others hold).
 */
export async function pingEveryMaster(redis: RedisClient): Promise<void> {
  // On a cluster, also what makes the client learn the nodes, if it has not yet.
  await redis.ping();
  if (!(redis instanceof Cluster)) return;
  const masters = redis.nodes('master');
  if (masters.length === 0) throw new Error('no Redis Cluster master is known');
  const [info] = await Promise.all([masters[0]!.cluster('INFO') as Promise<string>, ...masters.map((node) => node.ping())]);
  if (!/^cluster_state:ok\b/m.test(info)) throw new Error('the Redis Cluster reports a state other than ok');
}
