import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { batchWritesPerLoopTurn } from './loop-turn-writes.ts';

/** A standalone Redis or a Redis Cluster: the stores only use commands that work on both. */
export type RedisClient = Redis | Cluster;

export interface RedisTarget {
  /** One redis:// or rediss:// URL; for a cluster, one or more seed nodes separated by commas. */
  readonly redisUrl: string;
  readonly redisCluster: boolean;
}

/** Options both kinds take; on a cluster the per-node ones apply to each node's connection. */
export type RedisClientOptions = Pick<RedisOptions, 'maxRetriesPerRequest' | 'enableOfflineQueue' | 'enableAutoPipelining' | 'lazyConnect' | 'socketTimeout' | 'enableReadyCheck'>;

export function splitRedisUrls(redisUrl: string): string[] {
  return redisUrl
    .split(',')
    .map((url) => url.trim())
    .filter((url) => url !== '');
}

const SLOTS_REFRESH_MS = 5_000;

/** How long Redis may leave a command unanswered before its connection is taken for dead (its commands take milliseconds). */
export const REDIS_SILENCE_TIMEOUT_MS = 10_000;

/**
 * A write refused as READONLY: the Redis this connection reached has been made a replica (a
 * failover). Behind an address that now leads to the new primary (a managed service's primary
 * endpoint, a DNS name, a proxy), a new connection reaches it: ioredis reconnects on it. The write
 * itself fails (a 503 the client retries): sent again at once, it could meet the same replica
 * again, and again (what must not fail is sent again after pauses: failover-retry.ts).
 */
export function refusedByReplica(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('READONLY');
}

/** Connects to the target; a cluster learns its other nodes and the slot map from the seeds. */
export function openRedis(target: RedisTarget, options: RedisClientOptions = {}): RedisClient {
  const [first, ...rest] = splitRedisUrls(target.redisUrl);
  if (!first) throw new Error('no Redis URL');
  if (!target.redisCluster) {
    const redis = new Redis(first, { ...options, reconnectOnError: refusedByReplica });
    countConnectionsLost(redis, redis);
    return batchWritesOfEachConnection(redis);
  }
  const seeds = [first, ...rest].map((url) => new URL(url));
  const credentials = seeds[0]!;
  const { maxRetriesPerRequest, enableOfflineQueue, enableAutoPipelining, lazyConnect, socketTimeout, enableReadyCheck } = options;
  const cluster = new Cluster(
    seeds.map((url) => ({ host: url.hostname, port: Number(url.port || 6379) })),
    {
      ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
      ...(enableAutoPipelining === undefined ? {} : { enableAutoPipelining }),
      ...(lazyConnect === undefined ? {} : { lazyConnect }),
      // Auto-pipelined commands that meet a MOVED are failed together without the slot map being
      // corrected (ioredis issue 2075): after a node's restart one process kept sending a slot to
      // the wrong node for half a minute. Reading the map every few seconds bounds that.
      slotsRefreshInterval: SLOTS_REFRESH_MS,
      redisOptions: {
        ...(maxRetriesPerRequest === undefined ? {} : { maxRetriesPerRequest }),
        ...(socketTimeout === undefined ? {} : { socketTimeout }),
        ...(enableReadyCheck === undefined ? {} : { enableReadyCheck }),
        ...(credentials.username ? { username: decodeURIComponent(credentials.username) } : {}),
        ...(credentials.password ? { password: decodeURIComponent(credentials.password) } : {}),
        ...(credentials.protocol === 'rediss:' ? { tls: {} } : {}),
      },
    },
  );
  // A node's connection is made lazily, after the node is added.
  cluster.on('+node', (node: Redis) => {
    countConnectionsLost(cluster, node);
    batchWritesOfEachConnection(node);
  });
  return cluster;
}

const connectionsLost = new WeakMap<RedisClient, number>();

function countConnectionsLost(client: RedisClient, connection: Redis): void {
  connection.on('close', () => connectionsLost.set(client, connectionsLostBy(client) + 1));
}

/**
 * How many connections of a client have closed so far, any node's counted. A command during
 * which this grew may have run twice: ioredis sends again what a broken connection left
 * unanswered, on its new connection, or on a cluster on whichever node now holds the slot
 * (one connected already after a failover, so counting connections made would miss it).
 */
export function connectionsLostBy(client: RedisClient): number {
  return connectionsLost.get(client) ?? 0;
}

/** Each connection the client makes (a reconnection makes a new one) batches its writes per turn of the event loop. */
export function batchWritesOfEachConnection(redis: Redis): Redis {
  redis.on('connect', () => batchWritesPerLoopTurn(redis.stream));
  return redis;
}

/** The target without credentials, for logs. */
export function describeRedisTarget(target: RedisTarget): string {
  const nodes = splitRedisUrls(target.redisUrl).map((each) => {
    const url = new URL(each);
    return `${url.protocol}//${url.host}`;
  });
  return `${target.redisCluster ? 'cluster ' : ''}${nodes.join(',')}`;
}

/** Every key slot of a Redis Cluster. */
const CLUSTER_SLOTS = 16_384;

/** The connections that hold data: a standalone Redis's one, or each master of a cluster (as the client knows them now). */
export function masters(redis: RedisClient): Redis[] {
  return redis instanceof Cluster ? redis.nodes('master') : [redis];
}

/**
 * Whether Redis can serve every key, writes too: on a cluster, each slot has a master that
 * answers (a PING reaches one node only, and a client drops a node whose connection ended from
 * the nodes it knows, so the slot owners come from the cluster itself); a standalone Redis is
 * not a replica.
 */
export async function pingEveryMaster(redis: RedisClient): Promise<void> {
  // On a cluster, also what makes the client learn the nodes, if it has not yet.
  await redis.ping();
  if (!(redis instanceof Cluster)) return refuseReplica(redis);
  const ranges = await redis.cluster('SLOTS');
  if (ranges.reduce((covered, [first, last]) => covered + last - first + 1, 0) < CLUSTER_SLOTS) {
    throw new Error('some Redis Cluster slots have no master');
  }
  const known = new Map(redis.nodes('master').map((node) => [`${node.options.host}:${node.options.port}`, node]));
  // Each range: first slot, last slot, its master (host, port, id), then any replicas.
  const owners = new Set(ranges.map(([, , master]) => (master ? `${master[0]}:${master[1]}` : 'none')));
  // Every master known before any is pinged: a ping left running when the check fails would reject unhandled.
  const nodes = [...owners].map((owner) => {
    const node = known.get(owner);
    if (!node) throw new Error(`Redis Cluster master ${owner} is not connected`);
    return node;
  });
  await Promise.all(nodes.map((node) => node.ping()));
}

/**
 * A standalone Redis made a replica by a failover answers reads and refuses every write. A
 * reconnection may reach the new primary (see refusedByReplica); a process that is not
 * ready gets no requests, so no write would make it reconnect: the check does.
 */
async function refuseReplica(redis: Redis): Promise<void> {
  if (!/^role:slave\r?$/m.test((await infoSection(redis, 'replication')) ?? '')) return;
  redis.disconnect(true);
  throw new Error('Redis is a read-only replica (a failover?): reconnecting');
}

/**
 * A section of INFO, or undefined where the connection's ACL user may not run it (INFO is in
 * @dangerous): what it would tell (a replica, a cluster node) is then not checked.
 */
export async function infoSection(redis: Redis, section: 'replication' | 'cluster' | 'memory' | 'server'): Promise<string | undefined> {
  try {
    return await redis.info(section);
  } catch (error) {
    if ((error as Error).message.startsWith('NOPERM')) return undefined;
    throw error;
  }
}

/**
 * A set's or a hash's entries a page at a time (SSCAN, HSCAN with a COUNT): each command short,
 * where SMEMBERS or HGETALL of a directory-sized key holds Redis, and every request, for
 * milliseconds. A member may come twice (SCAN's guarantee is at least once); a hash's page is
 * field, value, field, value. Breaking off the loop reads no further.
 */
export async function* scanPages(scan: (cursor: string) => Promise<[cursor: string, page: string[]]>): AsyncGenerator<string[]> {
  let cursor = '0';
  do {
    const [next, page] = await scan(cursor);
    yield page;
    cursor = next;
  } while (cursor !== '0');
}

/** Text matched as itself in a SCAN's MATCH pattern, whose glob takes `*`, `?`, `[`, `]` and `\` as its own. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
