import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { z } from 'zod';
import { DEV_CERTS_DIR as DEV_CERTS } from '../../shared/src/dev-paths.ts';
import { describeCertificate } from '../../shared/src/pki/inspect.ts';
import type { TransferLimits } from './domain/chunk-storage.ts';
import { PROCESS_CLOCKS_APART_MS } from './domain/clocks.ts';
import type { RetentionPeriods } from './domain/lifecycle.ts';
import { type ClientTimeouts, DEFAULT_CLIENT_TIMEOUTS, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_CLIENT, type TlsSettings } from './https-server.ts';
import { checkRevocationList, type LoadedRevocationList } from './revocation-list.ts';
import { SERVER_ROLES, type ServerRole } from './roles.ts';
import type { SettingDisagreement } from './store/process-settings.ts';
import { splitRedisUrls } from './store/redis-client.ts';
import type { ReplicaSetting } from './store/replica-confirmation.ts';

/** MESH allows 100 MB per request and 100 GB per message; 10,000 chunks covers that at any sane chunk size. */
export const DEFAULT_LIMITS: TransferLimits = {
  inlinePayloadBytes: 64 * 1024,
  maxChunkBytes: 100 * 1024 * 1024,
  maxChunks: 10_000,
  maxMessageBytes: 100 * 1024 * 1024 * 1024,
  // A sending system uploads a chunk at a time, or a few at once: far below the 256 storage connections per process.
  maxTransfersPerMailbox: 16,
};

const DAY_MS = 86_400_000;

/** MESH: unacknowledged messages expire after 5 days, records go 30 days after delivery. */
export const DEFAULT_PERIODS: RetentionPeriods = {
  inboxExpiryMs: 5 * DAY_MS,
  uploadExpiryMs: DAY_MS,
  payloadRetentionMs: DAY_MS,
  messageRetentionMs: 30 * DAY_MS,
  // As long as the records they are about.
  auditRetentionMs: 30 * DAY_MS,
  deliveryCheckMs: deliveryCheckAfter(DEFAULT_CLIENT_TIMEOUTS.requestMs),
};

/**
 * A minute past the longest a request may take, and at least twice as long as a worker's clock
 * may run ahead of an API process's: a send allows for a worker that took its first check early
 * by half the delay (see firstCheckMayHaveCome; a short request timeout would otherwise leave
 * less than a clock's allowance, and a small send recorded after a skewed worker took its first
 * check without a check at all).
 */
function deliveryCheckAfter(requestTimeoutMs: number): number {
  return Math.max(requestTimeoutMs + 60_000, 2 * PROCESS_CLOCKS_APART_MS);
}

/** How long a worker holds a lifecycle check it claimed: one that dies mid-check delays it this long. */
export const DEFAULT_LIFECYCLE_LEASE_MS = 5 * 60_000;

/**
 * Long enough for a system that polls every five or ten minutes, each time on a new connection,
 * to resume its TLS session (a third of a full handshake's cost) rather than shake hands anew.
 */
export const DEFAULT_TLS_SESSION_SECONDS = 900;

/** Per mailbox: far above what one real system sends, low enough that one cannot starve the rest. */
export const DEFAULT_RATE_LIMIT = 500;

/**
 * Object storage silent this long on a call's connection (a dead keep-alive socket behind NAT, a
 * failover) fails the call: long enough for a store busy assembling a multi-GB multipart upload.
 */
export const DEFAULT_S3_SILENCE_MS = 120_000;

/**
 * How long a server uses a mailbox it has read before reading it again: a deactivation, a
 * password change or a workflow change made by an admin reaches every server within it.
 */
export const DEFAULT_MAILBOX_CACHE_MS = 1000;

/** How long a request waits for the replicas MESHBOX_REDIS_WAIT_REPLICAS asks for: replication on a LAN takes well under a millisecond. */
export const DEFAULT_REPLICA_WAIT_MS = 1000;

const seconds = z.coerce.number().positive();
/** Node's timers hold at most 2^31 - 1 ms (24.8 days); a longer one fires at once, again and again. */
const timerSeconds = seconds.max(86_400, 'at most 86400 (a day)');
/** A connection's timeouts: under a second, every request would be cut off as it starts. */
const connectionSeconds = timerSeconds.min(1, 'at least 1 (a second)');
/** A message's periods: scheduled as milliseconds in Redis scores, which a longer one would overflow. */
const MAX_PERIOD_SECONDS = 100 * 365 * 86_400;
const periodSeconds = seconds.max(MAX_PERIOD_SECONDS, `at most ${MAX_PERIOD_SECONDS} (100 years)`);
const port = z.coerce.number().int().min(1).max(65535);
const nonEmpty = z.string().trim().min(1);
/** A host to reach (`redis:host` and `redis://` have none), and a database number if any path: ioredis reads `/abc` as SELECT NaN. */
const redisUrl = z.url({ protocol: /^rediss?$/ }).refine((value) => {
  // Checked even when the URL check above failed: URL.parse, as it may be no URL at all.
  const url = URL.parse(value);
  return url !== null && url.hostname !== '' && url.port !== '0' && /^(\/\d*)?$/.test(url.pathname);
});
const redisUrls = z
  .string()
  .trim()
  .refine((value) => {
    const urls = splitRedisUrls(value);
    return urls.length > 0 && urls.every((each) => redisUrl.safeParse(each).success);
  }, {
    message: 'a redis:// or rediss:// URL with a host (and a port other than 0), and a database number if any path, e.g. redis://host:6379/0 (for a cluster: one or more, separated by commas)',
  });

/** What the server and the admin CLI both need: where state and payloads live. */
const backendSchema = z.object({
  MESHBOX_REDIS_URL: redisUrls.optional(),
  MESHBOX_REDIS_CLUSTER: z.enum(['true', 'false']).default('false'),
  // No braces: keys carry their own hash tags, and a tag in the prefix would override them all.
  MESHBOX_REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9:_.-]*$/, 'letters, digits and :_.- only').default('meshbox:'),
  // Port 0 is none to connect to; a query or fragment would be lost, or sent with every request.
  MESHBOX_S3_ENDPOINT: z
    .url({ protocol: /^https?$/, error: 'an http:// or https:// URL' })
    .refine((value) => {
      const url = URL.parse(value);
      return url !== null && url.port !== '0' && url.search === '' && url.hash === '';
    }, 'an http:// or https:// URL with no port 0, query or fragment, e.g. https://s3.eu-west-2.amazonaws.com')
    .optional(),
  MESHBOX_S3_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'a valid S3 bucket name').default('meshbox'),
  // As AWS names them (eu-west-2), or another store its own (Ceph's zone groups): a word, no spaces.
  MESHBOX_S3_REGION: z.string().trim().regex(/^[A-Za-z0-9_-]+$/, 'a region name of letters, digits, - and _, e.g. eu-west-2').default('us-east-1'),
  MESHBOX_S3_ACCESS_KEY_ID: nonEmpty.optional(),
  MESHBOX_S3_SECRET_ACCESS_KEY: nonEmpty.optional(),
  MESHBOX_S3_FORCE_PATH_STYLE: z.enum(['true', 'false']).default('true'),
  MESHBOX_S3_SILENCE_SECONDS: connectionSeconds.default(DEFAULT_S3_SILENCE_MS / 1000),
  MESHBOX_SECRET_KEY: nonEmpty.optional(),
  MESHBOX_SECRET_KEY_FILE: nonEmpty.default(resolve(DEV_CERTS, 'secret-key')),
});

const serverSchema = backendSchema.extend({
  MESHBOX_ROLE: z.enum(SERVER_ROLES).default('all'),
  MESHBOX_HOST: nonEmpty.default('127.0.0.1'),
  MESHBOX_PORT: port.default(8443),
  MESHBOX_TLS_CERT: nonEmpty.default(resolve(DEV_CERTS, 'server.crt')),
  MESHBOX_TLS_KEY: nonEmpty.default(resolve(DEV_CERTS, 'server.key')),
  MESHBOX_TLS_CA: nonEmpty.default(resolve(DEV_CERTS, 'ca.crt')),
  MESHBOX_TLS_CRL: nonEmpty.optional(),
  MESHBOX_TLS_TICKET_KEY_FILE: nonEmpty.optional(),
  MESHBOX_TLS_SESSION_SECONDS: connectionSeconds.int().default(DEFAULT_TLS_SESSION_SECONDS),
  // Each reload reads and parses the file: a millisecond's interval is a busy loop.
  MESHBOX_CRL_RELOAD_SECONDS: timerSeconds.min(0.1, 'at least 0.1').default(30),
  MESHBOX_SHARED_KEY: nonEmpty.optional(),
  MESHBOX_SHARED_KEY_FILE: nonEmpty.default(resolve(DEV_CERTS, 'shared-key')),
  MESHBOX_INLINE_PAYLOAD_BYTES: z.coerce.number().int().min(0).max(1024 * 1024).default(DEFAULT_LIMITS.inlinePayloadBytes),
  MESHBOX_MAX_CHUNK_BYTES: z.coerce.number().int().positive().default(DEFAULT_LIMITS.maxChunkBytes),
  MESHBOX_MAX_CHUNKS: z.coerce.number().int().positive().default(DEFAULT_LIMITS.maxChunks),
  MESHBOX_MAX_MESSAGE_BYTES: z.coerce.number().int().positive().default(DEFAULT_LIMITS.maxMessageBytes),
  MESHBOX_MAX_TRANSFERS_PER_MAILBOX: z.coerce.number().int().min(0).default(DEFAULT_LIMITS.maxTransfersPerMailbox),
  MESHBOX_INBOX_EXPIRY_SECONDS: periodSeconds.default(DEFAULT_PERIODS.inboxExpiryMs / 1000),
  MESHBOX_UPLOAD_EXPIRY_SECONDS: periodSeconds.default(DEFAULT_PERIODS.uploadExpiryMs / 1000),
  MESHBOX_PAYLOAD_RETENTION_SECONDS: periodSeconds.default(DEFAULT_PERIODS.payloadRetentionMs / 1000),
  MESHBOX_MESSAGE_RETENTION_SECONDS: periodSeconds.default(DEFAULT_PERIODS.messageRetentionMs / 1000),
  MESHBOX_AUDIT_RETENTION_SECONDS: z.coerce.number().min(0).max(MAX_PERIOD_SECONDS, `at most ${MAX_PERIOD_SECONDS} (100 years)`).default(DEFAULT_PERIODS.auditRetentionMs / 1000),
  MESHBOX_RATE_LIMIT_PER_SECOND: z.coerce.number().int().min(0).default(DEFAULT_RATE_LIMIT),
  MESHBOX_MAILBOX_CACHE_SECONDS: z.coerce.number().min(0).max(60).default(DEFAULT_MAILBOX_CACHE_MS / 1000),
  MESHBOX_REDIS_AUTO_PIPELINING: z.enum(['true', 'false']).default('false'),
  MESHBOX_REDIS_WAIT_REPLICAS: z.coerce.number().int().min(0).default(0),
  // Within the silence after which a Redis connection is taken for dead (REDIS_SILENCE_TIMEOUT_MS): a WAIT is silent until it ends.
  MESHBOX_REDIS_WAIT_TIMEOUT_SECONDS: seconds.min(0.001, 'at least 0.001 (a millisecond)').max(5, 'at most 5').default(DEFAULT_REPLICA_WAIT_MS / 1000),
  MESHBOX_HEADERS_TIMEOUT_SECONDS: connectionSeconds.default(DEFAULT_CLIENT_TIMEOUTS.headersMs / 1000),
  MESHBOX_REQUEST_TIMEOUT_SECONDS: connectionSeconds.default(DEFAULT_CLIENT_TIMEOUTS.requestMs / 1000),
  MESHBOX_IDLE_TIMEOUT_SECONDS: connectionSeconds.default(DEFAULT_CLIENT_TIMEOUTS.idleMs / 1000),
  MESHBOX_MAX_CONNECTIONS: z.coerce.number().int().min(1).default(DEFAULT_MAX_CONNECTIONS),
  MESHBOX_MAX_CONNECTIONS_PER_CLIENT: z.coerce.number().int().min(0).default(DEFAULT_MAX_CONNECTIONS_PER_CLIENT),
  // Long enough for any one check (a purge deletes a message's objects a thousand at a time).
  MESHBOX_LIFECYCLE_LEASE_SECONDS: timerSeconds.min(30).default(DEFAULT_LIFECYCLE_LEASE_MS / 1000),
  MESHBOX_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export interface S3Settings {
  readonly endpoint: string | undefined;
  readonly bucket: string;
  readonly region: string;
  readonly forcePathStyle: boolean;
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string } | undefined;
  /** How long a call may go without a byte either way before it is given up (default DEFAULT_S3_SILENCE_MS). */
  readonly silenceTimeoutMs?: number;
}

export interface BackendConfig {
  /** The server's own secret (mailbox passwords are encrypted under it); never given to clients. */
  readonly secretKey: string;
  /** Undefined: start the embedded local Redis (development). Several comma-separated seed nodes for a cluster. */
  readonly redisUrl: string | undefined;
  /** Whether redisUrl names nodes of a Redis Cluster. */
  readonly redisCluster: boolean;
  readonly redisPrefix: string;
  /** An undefined endpoint means the embedded local S3 server (development). */
  readonly s3: S3Settings;
}

export interface ServerConfig extends BackendConfig {
  /** api: serve MESH requests; worker: run lifecycle jobs (and serve only health and metrics); all: both. */
  readonly role: ServerRole;
  readonly host: string;
  readonly port: number;
  readonly tls: TlsSettings;
  /** When the server's certificate (MESHBOX_TLS_CERT) expires: clients refuse it after. */
  readonly certificateNotAfter: Date;
  /** The CRL the server starts with (MESHBOX_TLS_CRL), checked; its file is re-read every crlReloadMs. */
  readonly revocationList: LoadedRevocationList | undefined;
  readonly crlReloadMs: number;
  readonly sharedKey: string;
  readonly limits: TransferLimits;
  readonly periods: RetentionPeriods;
  /** The settings every process of a deployment must be started with alike, by variable: those the periods come from, the bucket and the request limits. */
  readonly sharedSettings: Readonly<Record<string, number | string>>;
  /** The keys every process of a deployment must be started with alike, by variable: compared by fingerprint only (ProcessSettingsStore). */
  readonly sharedSecrets: Readonly<Record<string, string>>;
  readonly maxRequestsPerSecond: number;
  /** How long a mailbox read is reused (0: read on every request). */
  readonly mailboxCacheMs: number;
  /** Whether Redis commands issued together share one write (see ConnectionSettings). */
  readonly redisAutoPipelining: boolean;
  /** How many Redis replicas must hold the writes of a send, a chunk or an acknowledgement before it is answered (see ConnectionSettings). */
  readonly redisReplicas: ReplicaSetting;
  readonly clientTimeouts: ClientTimeouts;
  /** Connections the process holds at once; one more is closed as it arrives. */
  readonly maxConnections: number;
  /** Connections one client (a certificate's CN) holds at once; one more is refused (answered 429, or closed unused). 0: no limit. */
  readonly maxConnectionsPerClient: number;
  /** How long a worker holds a lifecycle check it claimed before another may take it. */
  readonly lifecycleLeaseMs: number;
  readonly logLevel: string;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface SuspectedTypo {
  readonly variable: string;
  readonly meant: string;
}

/** What is said of a suspected typo, in the log at start and beside the reason when start-up fails. */
export function typoWarning({ variable, meant }: SuspectedTypo): string {
  return `${variable} is not a setting (ignored): ${meant}?`;
}

/**
 * `MESHBOX_*` variables the server does not read that are a letter or two from one it does:
 * a typo (`MESHBOX_S3_ENPOINT`) would otherwise be ignored, and the default used instead
 * (for the S3 endpoint or the Redis URL: local development services). Others (the CLI's
 * `MESHBOX_URL`, `MESHBOX_PROFILE`, ...) are no concern of the server's.
 */
export function suspectedTypos(environment: NodeJS.ProcessEnv): SuspectedTypo[] {
  const known = Object.keys(serverSchema.shape);
  return Object.keys(environment)
    .filter((name) => name.startsWith('MESHBOX_') && !known.includes(name))
    .flatMap((variable) => {
      // A slip of a letter or two in a long name; in a short one two letters make another word (the CLI's MESHBOX_CERT is no MESHBOX_PORT).
      const allowed = Math.max(1, Math.min(2, Math.floor((variable.length - 'MESHBOX_'.length) / 4)));
      const meant = known.find((name) => editDistance(name, variable) <= allowed);
      return meant ? [{ variable, meant }] : [];
    });
}

/** Edits from one name to the other, a swap of two neighbouring letters (MESHBOX_PROT) counting as one slip, as a letter added, left out or changed does. */
function editDistance(a: string, b: string): number {
  let beforePrevious: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) current[j] = Math.min(current[j]!, beforePrevious[j - 2]! + 1);
    }
    beforePrevious = previous;
    previous = current;
  }
  return previous[b.length]!;
}

/** What a value is to be, where zod's words ("expected number, received NaN") would describe its coercion instead. */
function describeIssue(issue: z.core.$ZodIssue, given: string | undefined): string {
  if (issue.code !== 'invalid_type' || (issue.expected !== 'number' && issue.expected !== 'int')) return issue.message;
  const value = Number(given);
  // 1e400, Infinity: a number, and none of use.
  const needed = Number.isNaN(value) || Number.isFinite(value) ? (issue.expected === 'int' ? 'a whole number' : 'a number') : 'a finite number';
  return `${needed} is needed, not ${JSON.stringify(given)}`;
}

const EMPTY_IS_A_VALUE = new Set(['MESHBOX_REDIS_PREFIX']);

/** A number as an operator writes one: what zod's coercion also reads as one (`0x20FB`, `1e3`) is more likely a slip. */
const DECIMAL = /^\d+(\.\d+)?$/;

/** Whether the schema reads the variable as a number. */
function isNumberSetting(schema: z.ZodObject, name: string): boolean {
  let field: unknown = schema.shape[name];
  while (field instanceof z.ZodDefault || field instanceof z.ZodOptional) field = field.unwrap();
  return field instanceof z.ZodNumber;
}

function parse<Schema extends z.ZodObject>(schema: Schema, environment: NodeJS.ProcessEnv): z.infer<Schema> {
  // An empty value is an unset one (as compose files and shell scripts leave them): its default
  // applies, not 0. Except where empty means something: no Redis key prefix.
  const given = Object.fromEntries(Object.entries(environment).filter(([name, value]) => EMPTY_IS_A_VALUE.has(name) || value?.trim() !== ''));
  // A finite number not so written (a number that is none at all is zod's to describe).
  const notDecimal = new Set(
    Object.entries(given)
      .filter(([name, value]) => isNumberSetting(schema, name) && Number.isFinite(Number(value)) && !DECIMAL.test(value?.trim() ?? ''))
      .map(([name]) => name),
  );
  const parsed = schema.safeParse(given);
  if (parsed.success && notDecimal.size === 0) return parsed.data;
  const problems = [
    ...[...notDecimal].map((name) => `  ${name}: a number in decimal digits is needed, not ${JSON.stringify(given[name])}`),
    ...(parsed.success ? [] : parsed.error.issues)
      .filter((issue) => !notDecimal.has(String(issue.path[0])))
      .map((issue) => `  ${issue.path.join('.')}: ${describeIssue(issue, given[String(issue.path[0])])}`),
  ];
  throw new ConfigError(`invalid configuration:\n${problems.join('\n')}`);
}

function backendConfig(env: z.infer<typeof backendSchema>): BackendConfig {
  const hasAccessKey = env.MESHBOX_S3_ACCESS_KEY_ID !== undefined;
  if (hasAccessKey !== (env.MESHBOX_S3_SECRET_ACCESS_KEY !== undefined)) {
    throw new ConfigError('invalid configuration:\n  MESHBOX_S3_ACCESS_KEY_ID and MESHBOX_S3_SECRET_ACCESS_KEY go together');
  }
  const redisCluster = env.MESHBOX_REDIS_CLUSTER === 'true';
  if (redisCluster && env.MESHBOX_REDIS_URL === undefined) {
    throw new ConfigError('invalid configuration:\n  MESHBOX_REDIS_CLUSTER=true needs MESHBOX_REDIS_URL: the seed nodes of the cluster');
  }
  if (redisCluster && splitRedisUrls(env.MESHBOX_REDIS_URL ?? '').some((url) => !/^\/?0?$/.test(new URL(url).pathname))) {
    throw new ConfigError('invalid configuration:\n  MESHBOX_REDIS_URL: a Redis Cluster has only database 0: leave the /<database> out of its URLs');
  }
  if (!redisCluster && splitRedisUrls(env.MESHBOX_REDIS_URL ?? '').length > 1) {
    throw new ConfigError('invalid configuration:\n  MESHBOX_REDIS_URL: several URLs name a cluster: set MESHBOX_REDIS_CLUSTER=true');
  }
  const secretKey = env.MESHBOX_SECRET_KEY ?? readKeyFile('MESHBOX_SECRET_KEY_FILE', env.MESHBOX_SECRET_KEY_FILE);
  return {
    secretKey,
    redisUrl: env.MESHBOX_REDIS_URL,
    redisCluster,
    redisPrefix: env.MESHBOX_REDIS_PREFIX,
    s3: {
      endpoint: env.MESHBOX_S3_ENDPOINT,
      bucket: env.MESHBOX_S3_BUCKET,
      region: env.MESHBOX_S3_REGION,
      forcePathStyle: env.MESHBOX_S3_FORCE_PATH_STYLE === 'true',
      silenceTimeoutMs: env.MESHBOX_S3_SILENCE_SECONDS * 1000,
      credentials:
        env.MESHBOX_S3_ACCESS_KEY_ID && env.MESHBOX_S3_SECRET_ACCESS_KEY
          ? { accessKeyId: env.MESHBOX_S3_ACCESS_KEY_ID, secretAccessKey: env.MESHBOX_S3_SECRET_ACCESS_KEY }
          : undefined,
    },
  };
}

/** The Redis and S3 settings alone (the admin CLI needs no TLS files or shared key). */
export function loadBackendConfig(environment: NodeJS.ProcessEnv = process.env): BackendConfig {
  return backendConfig(parse(backendSchema, environment));
}

/**
 * Unset, MESHBOX_REDIS_URL and MESHBOX_S3_ENDPOINT name the local development services, which
 * start together: with one of them set, the other would still be a development server (and
 * s3rver is not in a production install).
 */
export function refuseOneBackendLocal(config: BackendConfig): void {
  if ((config.redisUrl === undefined) === (config.s3.endpoint === undefined)) return;
  const [given, missing] = config.redisUrl === undefined ? ['MESHBOX_S3_ENDPOINT', 'MESHBOX_REDIS_URL'] : ['MESHBOX_REDIS_URL', 'MESHBOX_S3_ENDPOINT'];
  throw new ConfigError(
    `invalid configuration:\n  ${missing}: not set, though ${given} is: set both (for AWS S3, MESHBOX_S3_ENDPOINT=https://s3.<region>.amazonaws.com with MESHBOX_S3_REGION), or neither for the local development services`,
  );
}

/** The port the server listens on (MESHBOX_PORT), read as the server reads it: for what must name it before the server runs (a CLI profile's URL). */
export function loadPort(environment: NodeJS.ProcessEnv = process.env): number {
  return parse(serverSchema.pick({ MESHBOX_PORT: true }), environment).MESHBOX_PORT;
}

/** Reads and validates the MESHBOX_* environment; every bad value is named in one error. */
export function loadConfig(environment: NodeJS.ProcessEnv = process.env): ServerConfig {
  const env = parse(serverSchema, environment);
  if (env.MESHBOX_MAX_MESSAGE_BYTES < env.MESHBOX_MAX_CHUNK_BYTES) {
    throw new ConfigError('invalid configuration:\n  MESHBOX_MAX_MESSAGE_BYTES must be at least MESHBOX_MAX_CHUNK_BYTES');
  }
  const backends = backendConfig(env);
  refuseOneBackendLocal(backends);
  // The headers are part of the request: Node refuses to start with a longer limit on them.
  if (env.MESHBOX_HEADERS_TIMEOUT_SECONDS > env.MESHBOX_REQUEST_TIMEOUT_SECONDS) {
    throw new ConfigError('invalid configuration:\n  MESHBOX_HEADERS_TIMEOUT_SECONDS must be at most MESHBOX_REQUEST_TIMEOUT_SECONDS');
  }
  const sharedKey = env.MESHBOX_SHARED_KEY ?? readKeyFile('MESHBOX_SHARED_KEY_FILE', env.MESHBOX_SHARED_KEY_FILE);
  return {
    ...backends,
    role: env.MESHBOX_ROLE,
    host: env.MESHBOX_HOST,
    port: env.MESHBOX_PORT,
    ...tlsFiles(env),
    crlReloadMs: env.MESHBOX_CRL_RELOAD_SECONDS * 1000,
    sharedKey,
    limits: {
      inlinePayloadBytes: env.MESHBOX_INLINE_PAYLOAD_BYTES,
      maxChunkBytes: env.MESHBOX_MAX_CHUNK_BYTES,
      maxChunks: env.MESHBOX_MAX_CHUNKS,
      maxMessageBytes: env.MESHBOX_MAX_MESSAGE_BYTES,
      maxTransfersPerMailbox: env.MESHBOX_MAX_TRANSFERS_PER_MAILBOX,
    },
    periods: {
      inboxExpiryMs: env.MESHBOX_INBOX_EXPIRY_SECONDS * 1000,
      uploadExpiryMs: env.MESHBOX_UPLOAD_EXPIRY_SECONDS * 1000,
      payloadRetentionMs: env.MESHBOX_PAYLOAD_RETENTION_SECONDS * 1000,
      messageRetentionMs: env.MESHBOX_MESSAGE_RETENTION_SECONDS * 1000,
      auditRetentionMs: env.MESHBOX_AUDIT_RETENTION_SECONDS * 1000,
      deliveryCheckMs: deliveryCheckAfter(env.MESHBOX_REQUEST_TIMEOUT_SECONDS * 1000),
    },
    sharedSettings: {
      MESHBOX_INBOX_EXPIRY_SECONDS: env.MESHBOX_INBOX_EXPIRY_SECONDS,
      MESHBOX_UPLOAD_EXPIRY_SECONDS: env.MESHBOX_UPLOAD_EXPIRY_SECONDS,
      MESHBOX_PAYLOAD_RETENTION_SECONDS: env.MESHBOX_PAYLOAD_RETENTION_SECONDS,
      MESHBOX_MESSAGE_RETENTION_SECONDS: env.MESHBOX_MESSAGE_RETENTION_SECONDS,
      MESHBOX_AUDIT_RETENTION_SECONDS: env.MESHBOX_AUDIT_RETENTION_SECONDS,
      MESHBOX_REQUEST_TIMEOUT_SECONDS: env.MESHBOX_REQUEST_TIMEOUT_SECONDS,
      // Another (a misspelt one, created at start) would have its API processes answer 410 for what
      // the others stored, and its worker purge nothing of what is kept past its retention.
      MESHBOX_S3_BUCKET: env.MESHBOX_S3_BUCKET,
      // The limits a request is judged by: under others, the chunks of one upload would be
      // accepted or refused (413) by whichever process each reached. (The rate limit is not one
      // of them: its 429 says when to try again. MESHBOX_INLINE_PAYLOAD_BYTES and
      // MESHBOX_MAX_TRANSFERS_PER_MAILBOX are a process's own: where it keeps a small payload, and
      // what it lets one mailbox hold of its resources.)
      MESHBOX_MAX_CHUNK_BYTES: env.MESHBOX_MAX_CHUNK_BYTES,
      MESHBOX_MAX_CHUNKS: env.MESHBOX_MAX_CHUNKS,
      MESHBOX_MAX_MESSAGE_BYTES: env.MESHBOX_MAX_MESSAGE_BYTES,
    },
    // Under another, a process refuses every token the others accept: behind a load balancer,
    // clients see 403s now and then, each a failed login of their certificate (which past 10 a
    // minute refuses it for the rest of the minute).
    sharedSecrets: { MESHBOX_SHARED_KEY: sharedKey },
    maxRequestsPerSecond: env.MESHBOX_RATE_LIMIT_PER_SECOND,
    // Whole milliseconds: the cache takes nothing else.
    mailboxCacheMs: Math.round(env.MESHBOX_MAILBOX_CACHE_SECONDS * 1000),
    redisAutoPipelining: env.MESHBOX_REDIS_AUTO_PIPELINING === 'true',
    redisReplicas: { replicas: env.MESHBOX_REDIS_WAIT_REPLICAS, timeoutMs: Math.round(env.MESHBOX_REDIS_WAIT_TIMEOUT_SECONDS * 1000) },
    clientTimeouts: {
      headersMs: env.MESHBOX_HEADERS_TIMEOUT_SECONDS * 1000,
      requestMs: env.MESHBOX_REQUEST_TIMEOUT_SECONDS * 1000,
      idleMs: env.MESHBOX_IDLE_TIMEOUT_SECONDS * 1000,
    },
    maxConnections: env.MESHBOX_MAX_CONNECTIONS,
    maxConnectionsPerClient: env.MESHBOX_MAX_CONNECTIONS_PER_CLIENT,
    lifecycleLeaseMs: env.MESHBOX_LIFECYCLE_LEASE_SECONDS * 1000,
    logLevel: env.MESHBOX_LOG_LEVEL,
  };
}

/**
 * The TLS files, read and checked together: a certificate that is not PEM, a key that is not
 * the certificate's, a CA file with no certificate in it or a CRL OpenSSL would choke on
 * would otherwise end in a stack trace, or in a server that refuses every client.
 */
function tlsFiles(env: z.infer<typeof serverSchema>): Pick<ServerConfig, 'tls' | 'revocationList' | 'certificateNotAfter'> {
  const files = {
    cert: readRequiredFile('MESHBOX_TLS_CERT', env.MESHBOX_TLS_CERT),
    key: readRequiredFile('MESHBOX_TLS_KEY', env.MESHBOX_TLS_KEY),
    ca: readRequiredFile('MESHBOX_TLS_CA', env.MESHBOX_TLS_CA),
  };
  const crl = env.MESHBOX_TLS_CRL === undefined ? undefined : { file: env.MESHBOX_TLS_CRL, pem: readRequiredFile('MESHBOX_TLS_CRL', env.MESHBOX_TLS_CRL) };
  const problems: string[] = [];
  const check = <T>(what: string, action: () => T): T | undefined => {
    try {
      return action();
    } catch (error) {
      problems.push(`  ${what}: ${(error as Error).message}`);
      return undefined;
    }
  };
  const certificateNotAfter = check(`MESHBOX_TLS_CERT (${env.MESHBOX_TLS_CERT})`, () => {
    createSecureContext({ cert: files.cert });
    const { notAfter } = describeCertificate(files.cert);
    // A worker serves only health and metrics over it: its lifecycle work (expiry reports, purges) must go on.
    if (notAfter <= new Date() && env.MESHBOX_ROLE !== 'worker') {
      throw new Error(`it expired at ${notAfter.toISOString()}, so every client refuses it: issue a new one (meshbox admin cert server --force, or from your CA)`);
    }
    return notAfter;
  });
  check(`MESHBOX_TLS_KEY (${env.MESHBOX_TLS_KEY})`, () => createSecureContext({ cert: files.cert, key: files.key }));
  check(`MESHBOX_TLS_CA (${env.MESHBOX_TLS_CA})`, () => {
    if (!files.ca.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no certificate in it');
    createSecureContext({ ca: files.ca });
    const certificates = (files.ca.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []).map((pem) => new X509Certificate(pem));
    // A CA, or a self-signed root (an X.509 v1 root has no basicConstraints, and OpenSSL trusts it).
    if (!certificates.some((certificate) => certificate.ca || (certificate.checkIssued(certificate) && certificate.verify(certificate.publicKey)))) {
      const named = certificates.map((certificate) => certificate.subject.split('\n').join(', ')).join('; ');
      throw new Error(`no CA certificate in it (${named} is not one); give the CA that issues the client certificates`);
    }
  });
  // Its dates are read here once: the reload starts from them.
  const revocationList = crl && check(`MESHBOX_TLS_CRL (${crl.file})`, () => ({ ...crl, dates: checkRevocationList(crl.pem, files.ca, new Date()) }));
  const ticketFile = env.MESHBOX_TLS_TICKET_KEY_FILE;
  const ticketSecret = ticketFile === undefined ? undefined : check(`MESHBOX_TLS_TICKET_KEY_FILE (${ticketFile})`, () => readTicketSecret(ticketFile));
  if (problems.length > 0 || !certificateNotAfter) throw new ConfigError(`invalid configuration:\n${problems.join('\n')}`);
  return { tls: { ...files, crl: revocationList?.pem, ticketSecret, sessionSeconds: env.MESHBOX_TLS_SESSION_SECONDS }, revocationList, certificateNotAfter };
}

/** Fewer bytes than a ticket key holds would be guessable, or a file made empty by a slip. */
const MIN_TICKET_SECRET_BYTES = 32;

function readTicketSecret(path: string): Buffer {
  let secret: Buffer;
  try {
    secret = readFileSync(path);
  } catch (error) {
    throw new Error(`cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  if (secret.length < MIN_TICKET_SECRET_BYTES) {
    throw new Error(`it holds ${secret.length} bytes; it needs at least ${MIN_TICKET_SECRET_BYTES} random ones (openssl rand 48 > file)`);
  }
  // A certificate or a CRL (a slip of a path) is public: whoever has the secret can pass as any client.
  if (secret.subarray(0, 64).toString('latin1').includes('-----BEGIN')) {
    throw new Error('it is a PEM file (a certificate or key?), not random bytes (openssl rand 48 > file)');
  }
  return secret;
}

/**
 * The secret key given is not the one the directory's mailbox passwords are encrypted under;
 * says where the key came from, and `remedy` what to do (the server, an admin command and
 * setup each have their own).
 */
export class SecretKeyMismatchError extends ConfigError {
  override name = 'SecretKeyMismatchError';

  constructor(env: NodeJS.ProcessEnv, redisPrefix: string, remedy: string) {
    super(`the secret key (${secretKeySource(env)}) is not the one the mailbox passwords in this Redis (prefix ${redisPrefix}) are encrypted under; ${remedy}`);
  }
}

/** A process started with settings (message periods, bucket, request limits, shared key) other than those of the deployment's running processes. */
export class SettingsDisagreeError extends ConfigError {
  override name = 'SettingsDisagreeError';

  constructor(disagreements: readonly SettingDisagreement[], redisPrefix: string) {
    // A key's value is never said, nor its fingerprint: only that it differs.
    const differences = disagreements
      .map(({ name, here, there }) => (here === undefined ? `${name} differs from that of the processes running` : `${name} is ${here} here, ${there} in the processes running`))
      .join('; ');
    super(
      `${differences} (Redis prefix ${redisPrefix}): every api and worker process of a deployment must have the same message periods, bucket, request limits and shared key, ` +
        'or one would expire, purge, date or look for a message, or accept a request or token, otherwise than another; ' +
        'start this one with theirs, or, to change them, stop every process and start them all with the new values',
    );
  }
}

/** Where the secret key came from (as backendConfig reads it), so that a wrong one can be traced. */
function secretKeySource(env: NodeJS.ProcessEnv): string {
  if (env.MESHBOX_SECRET_KEY?.trim()) return 'from MESHBOX_SECRET_KEY';
  if (env.MESHBOX_SECRET_KEY_FILE?.trim()) return `read from MESHBOX_SECRET_KEY_FILE, ${env.MESHBOX_SECRET_KEY_FILE}`;
  return `read from the checkout's ${resolve(DEV_CERTS, 'secret-key')}, as neither MESHBOX_SECRET_KEY nor MESHBOX_SECRET_KEY_FILE is set`;
}

function readRequiredFile(variable: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new ConfigError(
      `invalid configuration:\n  ${variable}: cannot read ${path} (run \`npm run setup\` for the development PKI, or set ${variable})`,
    );
  }
}

/**
 * A key from a file, trimmed. An empty one is refused: an empty secret key would encrypt every
 * mailbox password under '' (and be recorded as the deployment's); an empty shared key refuses
 * every client. Both are an ordinary slip (a secret created without data).
 */
function readKeyFile(variable: string, path: string): string {
  const key = readRequiredFile(variable, path).trim();
  if (key === '') throw new ConfigError(`invalid configuration:\n  ${variable}: ${path} is empty`);
  return key;
}
