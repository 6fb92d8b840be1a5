import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { createServerLogger } from '../../server/src/logging.ts';
import type { Logger } from 'pino';
import { ensureLocalServices } from '../../scripts/services/index.ts';
import { createApp } from '../../server/src/app.ts';
import { PendingWork } from '../../server/src/http/pending-work.ts';
import { type Connections, connect, createS3Client } from '../../server/src/connections.ts';
import type { TransferLimits } from '../../server/src/domain/chunk-storage.ts';
import type { Services } from '../../server/src/domain/services.ts';
import { DEFAULT_LIMITS, DEFAULT_MAILBOX_CACHE_MS, DEFAULT_PERIODS, DEFAULT_RATE_LIMIT } from '../../server/src/config.ts';
import type { RetentionPeriods } from '../../server/src/domain/lifecycle.ts';
import { createMeshServer, rawAnswerReporter } from '../../server/src/https-server.ts';
import { Metrics } from '../../server/src/metrics.ts';
import type { NewMailbox } from '../../server/src/store/mailboxes.ts';
import { openRedis } from '../../server/src/store/redis-client.ts';
import { NO_REPLICA_CONFIRMATION, type ReplicaSetting } from '../../server/src/store/replica-confirmation.ts';
import { removeDeploymentState } from './cleanup.ts';
import {
  createCertificateAuthority,
  issueMailboxCertificate,
  issueServerCertificate,
} from '../../shared/src/pki/index.ts';

export interface KeyPair {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface TestMailbox extends KeyPair {
  readonly id: string;
  readonly password: string;
}

export interface TestServer {
  /** `https://127.0.0.1:PORT` */
  readonly origin: string;
  readonly caPem: string;
  readonly ca: KeyPair;
  readonly sharedKey: string;
  readonly services: Services;
  readonly connections: Connections;
  /** The connection to the local (standalone) Redis, for what only a standalone Redis offers (SCAN, duplicate). */
  readonly redis: Redis;
  readonly bucket: string;
  readonly redisPrefix: string;
  /** The HTTPS server, for a test that must know when the server itself has seen a connection end. */
  readonly httpsServer: Server;
  /** Resolves once the server has done what its requests go on doing after their answers (a send's delivery, index, audit entry, the move of its first check). */
  readonly settled: () => Promise<void>;
  /** Resolves once every request has done all it does, its token's claim kept or given back included. */
  readonly requestsSettled: () => Promise<void>;
  /** Registers a mailbox and issues it a client certificate from the server's CA. */
  readonly createMailbox: (mailbox?: Partial<NewMailbox>) => Promise<TestMailbox>;
  /** Stops the server and deletes its state, unless `keepState` (another server is to open it). */
  readonly close: (options?: { readonly keepState?: boolean }) => Promise<void>;
}

/** The server secret of test servers (admin commands in tests need the same one). */
export const TEST_SECRET_KEY = 'meshbox-test-secret-key';

let sharedPki: { ca: KeyPair; server: KeyPair } | undefined;

/** One CA and server certificate per test process: RSA key generation is the slow part. */
function testPki(): { ca: KeyPair; server: KeyPair } {
  if (!sharedPki) {
    const ca = createCertificateAuthority({ commonName: 'meshbox test CA' });
    const server = issueServerCertificate({
      ca,
      commonName: 'localhost',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
    });
    sharedPki = { ca, server };
  }
  return sharedPki;
}

/**
 * A real meshbox server for one test file: real Redis and S3 (scripts/services), its own
 * key prefix and bucket so parallel test files never see each other's data, real mutual TLS.
 */
export interface TestServerOptions {
  readonly limits?: Partial<TransferLimits>;
  readonly periods?: Partial<RetentionPeriods>;
  readonly maxRequestsPerSecond?: number;
  /** Reach Redis / S3 through these instead of the local services directly (e.g. a proxy that can cut them off). */
  readonly redisUrl?: string;
  readonly s3Endpoint?: string;
  /** Reuse the state of an earlier server (as a restarted process would). */
  readonly redisPrefix?: string;
  readonly bucket?: string;
  readonly sharedKey?: string;
  /** ioredis's auto-pipelining (default off, as in production). */
  readonly redisAutoPipelining?: boolean;
  /** Redis replicas a request's writes must reach before its answer (default none, as in production). */
  readonly redisReplicas?: ReplicaSetting;
  /** Object storage calls silent this long are given up (default as in production, 120 s). */
  readonly s3SilenceMs?: number;
  /** Where the server logs (default: nowhere, or TEST_LOG_LEVEL to stdout). */
  readonly logger?: Logger;
  /** Run lifecycle jobs in the test process (default true). */
  readonly worker?: boolean;
  /** What the HTTP app uses instead of the services (a store with a step that fails, for a test that stages it). */
  readonly appServices?: (services: Services) => Services;
}

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const local = await ensureLocalServices();
  const pki = testPki();
  const sharedKey = options.sharedKey ?? randomBytes(16).toString('hex');
  const bucket = options.bucket ?? `test-${randomBytes(8).toString('hex')}`;
  const redisPrefix = options.redisPrefix ?? `test:${randomUUID()}:`;
  // Unless asked to show them, the lines are written nowhere, but written: code that runs only to
  // log (the access line, at info) runs in every test as it does in production.
  const logger = options.logger ?? (process.env.TEST_LOG_LEVEL ? createServerLogger(process.env.TEST_LOG_LEVEL) : createServerLogger('debug', { write: () => {} }));
  const s3Settings = {
    endpoint: options.s3Endpoint ?? local.s3.endpoint,
    bucket,
    region: local.s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: local.s3.accessKeyId, secretAccessKey: local.s3.secretAccessKey },
    ...(options.s3SilenceMs === undefined ? {} : { silenceTimeoutMs: options.s3SilenceMs }),
  };
  const connections = await connect({
    redisUrl: options.redisUrl ?? local.redisUrl,
    redisCluster: false,
    redisPrefix,
    s3: s3Settings,
    sharedKey,
    secretKey: TEST_SECRET_KEY,
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    periods: { ...DEFAULT_PERIODS, ...options.periods },
    maxRequestsPerSecond: options.maxRequestsPerSecond ?? DEFAULT_RATE_LIMIT,
    mailboxCacheMs: DEFAULT_MAILBOX_CACHE_MS,
    redisAutoPipelining: options.redisAutoPipelining ?? false,
    redisReplicas: options.redisReplicas ?? NO_REPLICA_CONFIRMATION,
  }, logger);
  const { services } = connections;
  // Sweeps more often than in production, so tests see lifecycle steps soon after they are due.
  if (options.worker !== false) await connections.startWorker(logger, undefined, { sweepEveryMs: 200 });
  const pendingWork = new PendingWork();
  const metrics = new Metrics();
  const server: Server = createMeshServer(
    createApp(options.appServices?.(services) ?? services, logger, { pendingWork, metrics }),
    { cert: pki.server.certPem, key: pki.server.keyPem, ca: pki.ca.certPem },
    { onAnsweredRaw: rawAnswerReporter(logger, metrics) },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  return {
    origin: `https://127.0.0.1:${port}`,
    caPem: pki.ca.certPem,
    ca: pki.ca,
    sharedKey,
    services,
    connections,
    redis: connections.redis as Redis,
    bucket,
    redisPrefix,
    httpsServer: server,
    settled: () => pendingWork.settled('follow-up'),
    requestsSettled: () => pendingWork.settled(),
    createMailbox: async (mailbox = {}) => {
      const id = (mailbox.id ?? `T${randomBytes(5).toString('hex')}`).toUpperCase();
      const password = mailbox.password ?? randomBytes(12).toString('hex');
      const created = await services.mailboxes.create({ ...mailbox, id, password });
      if (!created) throw new Error(`mailbox ${id} exists`);
      const certificate = issueMailboxCertificate({ ca: pki.ca, mailboxId: id });
      await services.certificates.recordIssued(id, certificate.certPem);
      return { id, password, certPem: certificate.certPem, keyPem: certificate.keyPem };
    },
    close: async ({ keepState = false } = {}) => {
      server.closeAllConnections();
      server.close();
      // The worker stops first, so nothing writes while the state is deleted.
      await connections.close();
      if (keepState) return;
      // Straight to the shared services: a test's own endpoint may be a proxy it has cut.
      const redis = openRedis({ redisUrl: local.redisUrl, redisCluster: false });
      const s3 = createS3Client({ ...s3Settings, endpoint: local.s3.endpoint });
      try {
        await removeDeploymentState(redis, redisPrefix, s3, bucket);
      } finally {
        redis.disconnect();
        s3.destroy();
      }
    },
  };
}
