import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { START_UP_ANSWER_MS, within } from './time-limit.ts';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Logger } from 'pino';
import { newMessageId } from '../../shared/src/protocol/index.ts';
import { ConfigError, DEFAULT_S3_SILENCE_MS, type S3Settings } from './config.ts';
import type { TransferLimits } from './domain/chunk-storage.ts';
import type { RetentionPeriods } from './domain/lifecycle.ts';
import type { Services } from './domain/services.ts';
import { type LifecycleWorker, queuePrefix, startLifecycleWorker, type WorkerTiming } from './jobs/lifecycle-worker.ts';
import type { Metrics } from './metrics.ts';
import { AuditLog } from './store/audit-log.ts';
import { CertificateStore } from './store/certificates.ts';
import { redisKeys } from './store/keys.ts';
import { ReplicaConfirmation, type ReplicaSetting } from './store/replica-confirmation.ts';
import { LifecycleSchedule } from './store/lifecycle-schedule.ts';
import { MailboxStore } from './store/mailboxes.ts';
import { MessageStore } from './store/messages.ts';
import { PasswordCipher } from './store/password-cipher.ts';
import { INLINE_MEMORY_SHARE, RedisMemoryWatch } from './store/redis-memory.ts';
import { LoginFailures } from './domain/login-failures.ts';
import { TransferSlots } from './domain/transfer-slots.ts';
import { PayloadStore } from './store/payloads.ts';
import { RateLimitStore } from './store/rate-limits.ts';
import { describeRedisTarget, infoSection, masters, openRedis, REDIS_SILENCE_TIMEOUT_MS, type RedisClient, type RedisTarget } from './store/redis-client.ts';
import { UsedTokenStore } from './store/used-tokens.ts';
import { refuseRedisOtherThanSet } from './store/redis-target-check.ts';

export interface Connections {
  readonly services: Services;
  readonly redis: RedisClient;
  readonly s3: S3Client;
  readonly schedule: LifecycleSchedule;
  /** Runs lifecycle jobs in this process until close(). */
  readonly startWorker: (logger: Logger, metrics?: Metrics, timing?: WorkerTiming) => Promise<void>;
  readonly close: () => Promise<void>;
}

export interface ConnectionSettings extends RedisTarget {
  readonly redisPrefix: string;
  readonly s3: S3Settings;
  readonly sharedKey: string;
  readonly secretKey: string;
  readonly limits: TransferLimits;
  readonly periods: RetentionPeriods;
  readonly maxRequestsPerSecond: number;
  readonly mailboxCacheMs: number;
  /**
   * ioredis's auto-pipelining (one batch of commands in flight at a time) on top of the writes per
   * turn of the event loop that every connection makes (docs/operations.md: slower where measured).
   */
  readonly redisAutoPipelining: boolean;
  /**
   * How many replicas of each Redis master must hold the writes of a send, a chunk upload or an
   * acknowledgement before it is answered, and how long to wait for them (unconfirmed in time, 503).
   */
  readonly redisReplicas: ReplicaSetting;
}

/** Beyond every mailbox of England's ~28,000 organisations; a few MiB at most. */
const MAILBOX_CACHE_ENTRIES = 50_000;

/**
 * What of the SDK's logging reaches the log: its own warnings only. It would otherwise log
 * every command it sends (at info, the level a server runs at) and every command that fails
 * (at error, even the expected 404 of a bucket's existence check at start-up); the stores
 * handle those failures and the server logs the ones that matter.
 */
function sdkWarningsOnly(logger: Logger): NonNullable<S3ClientConfig['logger']> {
  const s3 = logger.child({ component: 's3' });
  const ignore = (): void => {};
  return {
    trace: ignore,
    debug: ignore,
    info: ignore,
    error: ignore,
    warn: (...content: unknown[]) => {
      // Said of every upload ended on purpose (its client went away), which the server reports itself.
      if (typeof content[0] === 'string' && content[0].startsWith('An error was encountered in a non-retryable streaming request')) return;
      s3.warn({ content }, 'S3 client warning');
    },
  };
}

const S3_CONNECT_TIMEOUT_MS = 10_000;
/** REDIS_SILENCE_TIMEOUT_MS for the worker's (BullMQ's) connections, whose wait for a job blocks in Redis for up to 10 s (BullMQ's maximumBlockTimeout). */
const WORKER_REDIS_SILENCE_TIMEOUT_MS = 20_000;

/** `logger`: where the SDK's own warnings go (as JSON lines with the rest), instead of the console. */
export function createS3Client(settings: S3Settings, logger?: Logger): S3Client {
  // Keep-alive sockets: a TCP (and TLS) setup per chunk would dominate small messages. An
  // idle one is closed after 4 s, before the server's own keep-alive timeout (5 s for Node
  // servers such as s3rver, longer for AWS S3 and MinIO) can close it just as a request goes
  // out on it: the SDK cannot retry an upload whose body streams from the client (a 503).
  const agentOptions = { keepAlive: true, maxSockets: 256, timeout: 4_000 };
  return new S3Client({
    region: settings.region,
    forcePathStyle: settings.forcePathStyle,
    // The SDK's default CRC trailers (aws-chunked bodies) are not understood by every
    // S3-compatible server (s3rver stores them verbatim); checksums only where S3 requires them.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    ...(logger ? { logger: sdkWarningsOnly(logger) } : {}),
    requestHandler: new NodeHttpHandler({
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
      // A storage endpoint that accepts the connection and then says nothing (a dead keep-alive
      // socket behind NAT, a failover) must fail the call, not hold it, and the lifecycle
      // worker behind it, for ever. A socket timeout is of silence, not of a whole transfer; the
      // handler's requestTimeout is of the whole request, and only logs a warning when it passes.
      connectionTimeout: S3_CONNECT_TIMEOUT_MS,
      socketTimeout: settings.silenceTimeoutMs ?? DEFAULT_S3_SILENCE_MS,
    }),
  });
}

/** Redis or object storage cannot be reached at start-up; the message says which, where and why. */
export class BackendUnreachableError extends Error {
  override name = 'BackendUnreachableError';
}

/**
 * Replicas asked for (MESHBOX_REDIS_WAIT_REPLICAS) that Redis does not have: every send would be
 * refused. Said at start, as an error; not refused, as a replica may be down for a moment.
 */
async function warnOfTooFewReplicas(replicas: ReplicaConfirmation, setting: ReplicaSetting, logger: Logger | undefined): Promise<void> {
  if (!replicas.required) return;
  const short = await replicas.mastersShort();
  if (short.length === 0) return;
  logger?.error(
    { masters: short, replicasAsked: setting.replicas },
    `Redis reports fewer replicas online than MESHBOX_REDIS_WAIT_REPLICAS=${setting.replicas} asks for: sends, chunks and acknowledgements are refused (503) until it has them (docs/operations.md)`,
  );
}

/**
 * A Redis that may evict keys under memory pressure (volatile-lru is a managed service's default)
 * drops used tokens, so replayed ones are accepted, and id reservations; with allkeys-* messages
 * too. Said at start, as an error: operations.md asks for maxmemory-policy noeviction.
 */
async function warnOfEviction(redis: RedisClient, logger: Logger | undefined): Promise<void> {
  for (const node of masters(redis)) {
    const policy = /^maxmemory_policy:(\S+)/m.exec((await infoSection(node, 'memory')) ?? '')?.[1];
    if (policy === undefined || policy === 'noeviction') continue;
    logger?.error(
      { maxmemoryPolicy: policy, node: `${node.options.host}:${node.options.port}` },
      `Redis may delete keys under memory pressure (maxmemory-policy ${policy}): used tokens (replays would be accepted) and state with them; set maxmemory-policy noeviction (docs/operations.md)`,
    );
  }
}

/** The oldest Redis meshbox runs on: its scripts use 7.0's flags (a script only a primary runs: store/lua/sender-on-primary.lua). */
export const MINIMUM_REDIS_MAJOR = 7;

/** The major version in an INFO server answer (`redis_version:7.0.15`); undefined when it says none. */
export function redisMajorVersion(info: string): number | undefined {
  const major = /^redis_version:(\d+)\./m.exec(info)?.[1];
  return major === undefined ? undefined : Number(major);
}

/** Refuses a Redis older than MINIMUM_REDIS_MAJOR, whose refusals of scripts would show only later, on the requests that need them. With INFO refused (an ACL), nothing is known: not refused. */
async function refuseOldRedis(redis: RedisClient): Promise<void> {
  for (const node of masters(redis)) {
    const info = await infoSection(node, 'server');
    const major = info === undefined ? undefined : redisMajorVersion(info);
    if (major !== undefined && major < MINIMUM_REDIS_MAJOR) {
      const version = /^redis_version:(\S+)/m.exec(info ?? '')?.[1];
      throw new ConfigError(`Redis at ${node.options.host}:${node.options.port} is version ${version}: meshbox needs Redis ${MINIMUM_REDIS_MAJOR}.0 or later`);
    }
  }
}

/**
 * A start-up step on Redis, given START_UP_ANSWER_MS and failing with Redis named: one reached by
 * the first ping may still fail the next step (a cluster whose master for that slot is down).
 */
export function atStartOnRedis<T>(settings: RedisTarget, step: Promise<T>): Promise<T> {
  return within(step, START_UP_ANSWER_MS).catch((error: unknown) => {
    if (error instanceof ConfigError || error instanceof BackendUnreachableError) throw error;
    throw new BackendUnreachableError(`cannot use Redis at ${describeRedisTarget(settings)}: ${(error as Error).message}`);
  });
}

/** Connects the stores to Redis and S3 and makes sure the bucket exists. */
export async function connect(settings: ConnectionSettings, logger?: Logger): Promise<Connections> {
  const redis = openRedis(settings, {
    // Fail a request fast while Redis is away instead of queueing it without bound.
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    enableAutoPipelining: settings.redisAutoPipelining,
    // A connection that stays open and silent (a peer gone without a word, a firewall dropping
    // it) would hold every request until its timeout, and never come back: drop it and reconnect.
    socketTimeout: REDIS_SILENCE_TIMEOUT_MS,
    // ioredis's ready check holds every command, unanswered, while a restarted Redis loads its
    // data (minutes for a large AOF): sent at once, each is refused LOADING, answered 503.
    enableReadyCheck: false,
  });
  const s3 = createS3Client(settings.s3, logger);
  const keys = redisKeys(settings.redisPrefix);
  const payloads = new PayloadStore(s3, settings.s3.bucket);
  const replicas = new ReplicaConfirmation(redis, settings.redisReplicas);
  // Listened to from the start: ioredis prints an error nobody listens to with its stack trace.
  let redisError: Error | undefined;
  const noteStartError = (error: Error): void => {
    redisError = error;
  };
  redis.on('error', noteStartError);
  try {
    // A peer that takes the connection and never answers (a proxy whose backend is down) would otherwise hold start-up for ever, silently.
    await within(redis.ping(), START_UP_ANSWER_MS).catch((error: unknown) => {
      const reason = (redisError ?? (error as Error)).message;
      // What ioredis says of a standalone Redis taken for a cluster names neither.
      const hint = settings.redisCluster && /slots cache/i.test(reason) ? ' (is it a Redis Cluster? For a standalone Redis, MESHBOX_REDIS_CLUSTER=false)' : '';
      throw new BackendUnreachableError(`cannot reach Redis at ${describeRedisTarget(settings)}: ${reason}${hint}`);
    });
    await atStartOnRedis(settings, refuseRedisOtherThanSet(redis, settings));
    await atStartOnRedis(settings, refuseOldRedis(redis));
    await atStartOnRedis(settings, warnOfEviction(redis, logger));
    await atStartOnRedis(settings, warnOfTooFewReplicas(replicas, settings.redisReplicas, logger));
    await within(payloads.ensureBucket(), START_UP_ANSWER_MS).catch((error: unknown) => {
      const where = settings.s3.endpoint ?? 'the default AWS endpoint';
      throw new BackendUnreachableError(`cannot use bucket ${settings.s3.bucket} at ${where}: ${(error as Error).message || (error as Error).name}`);
    });
  } catch (error) {
    redis.disconnect();
    s3.destroy();
    throw error;
  }
  redis.off('error', noteStartError);
  // ioredis reconnects by itself; an outage is reported by /readyz and 503s, logged here once per error.
  const reportRedisError = (error: Error): void => logger?.warn({ err: error }, 'redis connection error');
  redis.on('error', reportRedisError);
  const memory = new RedisMemoryWatch(redis, (full, usage) => {
    const used = { usedBytes: usage.usedBytes, maxmemoryBytes: usage.maxBytes };
    if (full) logger?.warn(used, `Redis is past ${INLINE_MEMORY_SHARE * 100}% of its maxmemory: small payloads go to object storage until it is below again (docs/operations.md)`);
    else logger?.info(used, 'Redis is below its share for small payloads again: they are kept in it again');
  });
  // Not waited for: a Redis that stopped answering since the checks above must not hold start-up.
  void memory.check().catch(() => undefined);
  memory.start();
  const schedule = new LifecycleSchedule(redis, keys);
  const rateLimits = new RateLimitStore(redis, keys);
  const services: Services = {
    mailboxes: new MailboxStore(redis, keys, new PasswordCipher(settings.secretKey), {
      readCache: { ttlMs: settings.mailboxCacheMs, maxEntries: MAILBOX_CACHE_ENTRIES },
      onUnreadable: (error) => logger?.error({ err: error }, 'mailbox left out of a listing: its record cannot be read'),
    }),
    messages: new MessageStore(redis, keys),
    payloads,
    usedTokens: new UsedTokenStore(redis, keys),
    audit: new AuditLog(redis, keys),
    certificates: new CertificateStore(redis, keys),
    rateLimits,
    loginFailures: new LoginFailures(rateLimits),
    maxRequestsPerSecond: settings.maxRequestsPerSecond,
    sharedKey: settings.sharedKey,
    now: () => new Date(),
    newMessageId,
    limits: settings.limits,
    transfers: new TransferSlots(settings.limits.maxTransfersPerMailbox, settings.limits.inlinePayloadBytes),
    periods: settings.periods,
    lifecycle: schedule,
    redisRoomForPayloads: memory.roomForPayloads,
    replicas,
  };
  const workers: { worker: LifecycleWorker; connection: RedisClient }[] = [];
  return {
    services,
    redis,
    s3,
    schedule,
    startWorker: async (logger, metrics, timing) => {
      // BullMQ wants a connection that waits for Redis rather than fails a command after retries;
      // one gone silent would stop every sweep until TCP gave up on it, hours later.
      const connection = openRedis(settings, { maxRetriesPerRequest: null, socketTimeout: WORKER_REDIS_SILENCE_TIMEOUT_MS });
      connection.on('error', reportRedisError);
      const worker = await startLifecycleWorker(services, schedule, connection, queuePrefix(settings.redisPrefix), logger, timing, metrics);
      workers.push({ worker, connection });
    },
    close: async () => {
      memory.stop();
      // Workers finish the jobs they are running before they stop.
      await Promise.all(workers.map(({ worker }) => worker.close()));
      for (const { connection } of workers) connection.disconnect();
      await redis.quit().catch(() => redis.disconnect());
      s3.destroy();
    },
  };
}
