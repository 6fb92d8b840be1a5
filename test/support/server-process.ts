import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ensureLocalServices } from '../../scripts/services/index.ts';
import { createS3Client } from '../../server/src/connections.ts';
import { CertificateStore } from '../../server/src/store/certificates.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import { PayloadStore } from '../../server/src/store/payloads.ts';
import { MailboxStore } from '../../server/src/store/mailboxes.ts';
import { PasswordCipher } from '../../server/src/store/password-cipher.ts';
import { openRedis, type RedisTarget } from '../../server/src/store/redis-client.ts';
import { REPO_ROOT } from '../../shared/src/dev-paths.ts';
import {
  createCertificateAuthority,
  createRevocationList,
  issueMailboxCertificate,
  issueServerCertificate,
} from '../../shared/src/pki/index.ts';
import { type KeyPair, TEST_SECRET_KEY, type TestMailbox } from './harness.ts';
import { freePort, listensOn, portOpen, sleep, waitFor } from '../../scripts/services/processes.ts';
import { removeDeploymentState } from './cleanup.ts';
import { makeTemporaryDirectory, removeTemporaryDirectory } from './temporary-directory.ts';
import { tokenClaimed, tokenGivenBack } from './token-claims.ts';

export interface ServerProcess {
  readonly origin: string;
  /** Holds ca.crt, ca.key, server.crt, server.key (an admin's PKI folder for this server). */
  readonly pkiDir: string;
  /** The MESHBOX_* variables an admin command needs to act on this server's state. */
  readonly adminEnvironment: Record<string, string>;
  readonly caPem: string;
  readonly sharedKey: string;
  /** To start more processes of the same deployment. */
  readonly deployment: Deployment;
  /** What the process (and any earlier run of it) wrote to stdout and stderr: its log, for a failing test to show. */
  readonly output: () => string;
  /** The current server process's pid (it changes on restart). */
  readonly pid: () => number;
  /** Signals the process and resolves with its exit code once it has gone. */
  readonly kill: (signal: NodeJS.Signals) => Promise<number | null>;
  /** Starts the process again, same port and configuration (after kill). */
  readonly restart: () => Promise<void>;
  readonly createMailbox: () => Promise<TestMailbox>;
  /** Waits until the process has claimed this token (see token-claims.ts): its request is in the server's hands. */
  readonly tokenClaimed: (authorization: string) => Promise<boolean>;
  /** Waits until the process has given this token back (see token-claims.ts): it is done with its request, unserved. */
  readonly tokenGivenBack: (authorization: string) => Promise<boolean>;
  /** Waits until the port refuses connections (a process stopping has closed its listener). */
  readonly listenerClosed: () => Promise<boolean>;
  /** Peak resident set size of the server process so far (VmHWM), in bytes. */
  readonly peakRssBytes: () => Promise<number>;
  /** Removes a message's chunks from the server's bucket (tests and benchmarks clean up after themselves). */
  readonly deleteMessagePayload: (messageId: string) => Promise<void>;
  readonly stop: () => Promise<void>;
}

/**
 * meshbox as its own process (`node server/src/main.ts`), configured only through MESHBOX_*
 * variables like a deployment, on the local Redis and S3 with its own prefix and bucket.
 */
/** What several server processes of one deployment share: PKI, shared key, Redis prefix, bucket. */
export interface Deployment {
  readonly dir: string;
  readonly ca: KeyPair;
  readonly sharedKey: string;
  readonly prefix: string;
  readonly bucket: string;
  /** Where its state lives: the local Redis unless the first process was given another. */
  readonly redis: RedisTarget;
}

/** The command that starts a server through the CLI (`meshbox serve`), for `startServerProcess`'s `command`. */
export function viaServeCommand(...args: string[]): string[] {
  return [resolve(REPO_ROOT, 'client-cli/src/main.js'), 'serve', ...args];
}

export async function startServerProcess(
  extraEnvironment: Record<string, string> = {},
  options: {
    readonly withCrl?: boolean;
    readonly deployment?: Deployment;
    readonly redis?: RedisTarget;
    /** What node runs (default: the server's main module; the CLI's `serve` is another way in). */
    readonly command?: readonly string[];
  } = {},
): Promise<ServerProcess> {
  const local = await ensureLocalServices();
  const shared = options.deployment;
  const dir = shared?.dir ?? (await makeTemporaryDirectory('server'));
  const ca: KeyPair = shared?.ca ?? createCertificateAuthority({ commonName: 'meshbox process test CA' });
  const server = issueServerCertificate({ ca, commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  await writeFile(join(dir, 'ca.crt'), ca.certPem);
  await writeFile(join(dir, 'ca.key'), ca.keyPem);
  const crlEnvironment: Record<string, string> = {};
  if (options.withCrl) {
    // An empty list to begin with, as `admin cert revoke` later rewrites it.
    await writeFile(join(dir, 'crl.pem'), createRevocationList({ ca, revoked: [] }));
    crlEnvironment.MESHBOX_TLS_CRL = join(dir, 'crl.pem');
  }
  await writeFile(join(dir, 'server.crt'), server.certPem);
  await writeFile(join(dir, 'server.key'), server.keyPem);
  const sharedKey = shared?.sharedKey ?? randomBytes(16).toString('hex');
  const prefix = shared?.prefix ?? `proc:${randomUUID()}:`;
  let port = await freePort();
  const bucket = shared?.bucket ?? `proc-${randomBytes(6).toString('hex')}`;
  const redisTarget: RedisTarget = shared?.redis ?? options.redis ?? { redisUrl: local.redisUrl, redisCluster: false };
  const redisEnvironment = { MESHBOX_REDIS_URL: redisTarget.redisUrl, MESHBOX_REDIS_CLUSTER: String(redisTarget.redisCluster) };
  const s3 = createS3Client({
    endpoint: local.s3.endpoint,
    bucket,
    region: local.s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: local.s3.accessKeyId, secretAccessKey: local.s3.secretAccessKey },
  });
  const environment = {
    ...process.env,
    MESHBOX_PORT: String(port),
    MESHBOX_TLS_CERT: join(dir, 'server.crt'),
    MESHBOX_TLS_KEY: join(dir, 'server.key'),
    MESHBOX_TLS_CA: join(dir, 'ca.crt'),
    MESHBOX_SHARED_KEY: sharedKey,
    MESHBOX_SECRET_KEY: TEST_SECRET_KEY,
    ...redisEnvironment,
    MESHBOX_REDIS_PREFIX: prefix,
    MESHBOX_S3_ENDPOINT: local.s3.endpoint,
    MESHBOX_S3_BUCKET: bucket,
    MESHBOX_S3_ACCESS_KEY_ID: local.s3.accessKeyId,
    MESHBOX_S3_SECRET_ACCESS_KEY: local.s3.secretAccessKey,
    MESHBOX_LOG_LEVEL: 'warn',
    ...crlEnvironment,
    ...extraEnvironment,
  };
  let child: ChildProcess;
  let output = '';
  // The end of the log is what explains a failure; a long benchmark run must not grow it for ever.
  const keepOutput = (data: Buffer) => (output = (output + data.toString()).slice(-100_000));
  const spawnServer = async (): Promise<void> => {
    child = spawn(process.execPath, options.command ?? [resolve(REPO_ROOT, 'server/src/main.ts')], { env: environment, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', keepOutput);
    child.stderr?.on('data', keepOutput);
    if (!(await waitForPort(port, child))) {
      child.kill('SIGKILL');
      throw new Error(`server process did not start:\n${output}`);
    }
  };
  const kill = async (signal: NodeJS.Signals): Promise<number | null> => {
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    const exited = once(child, 'exit');
    child.kill(signal);
    const [code] = (await exited) as [number | null];
    return code;
  };
  for (let attempt = 1; ; attempt++) {
    try {
      await spawnServer();
      break;
    } catch (error) {
      // Taken by another process between freePort() and the bind: another port.
      if (attempt === 3 || !output.includes('the port is in use')) {
        // No one will stop a process that never started (tests start some to see them refused): its folder goes now.
        if (!shared) await removeTemporaryDirectory(dir);
        throw error;
      }
      port = await freePort();
      environment.MESHBOX_PORT = String(port);
    }
  }
  const redis = openRedis(redisTarget);
  // A test may take Redis away from the server (and so from this client) on purpose: ioredis reconnects by itself, and would otherwise print each failed try.
  redis.on('error', () => undefined);
  const mailboxes = new MailboxStore(redis, redisKeys(prefix), new PasswordCipher(TEST_SECRET_KEY));
  return {
    origin: `https://127.0.0.1:${port}`,
    pkiDir: dir,
    adminEnvironment: {
      ...redisEnvironment,
      MESHBOX_REDIS_PREFIX: prefix,
      MESHBOX_S3_ENDPOINT: local.s3.endpoint,
      MESHBOX_PKI_DIR: dir,
      MESHBOX_SECRET_KEY: TEST_SECRET_KEY,
    },
    caPem: ca.certPem,
    sharedKey,
    deployment: { dir, ca, sharedKey, prefix, bucket, redis: redisTarget },
    output: () => output,
    pid: () => child.pid ?? 0,
    kill,
    restart: spawnServer,
    createMailbox: async () => {
      const id = `P${randomBytes(5).toString('hex').toUpperCase()}`;
      const password = randomBytes(12).toString('hex');
      await mailboxes.create({ id, password });
      const certificate = issueMailboxCertificate({ ca, mailboxId: id });
      await new CertificateStore(redis, redisKeys(prefix)).recordIssued(id, certificate.certPem);
      return { id, password, ...certificate };
    },
    tokenClaimed: (authorization) => tokenClaimed(redis, prefix, authorization),
    tokenGivenBack: (authorization) => tokenGivenBack(redis, prefix, authorization),
    listenerClosed: () => waitFor(async () => !(await portOpen(port)), 30_000, 20),
    peakRssBytes: async () => {
      const status = await readFile(`/proc/${child.pid ?? 0}/status`, 'utf8');
      const kilobytes = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
      return Number(kilobytes) * 1024;
    },
    deleteMessagePayload: (messageId) => new PayloadStore(s3, bucket).deleteMessage(messageId),
    stop: async () => {
      await kill('SIGTERM');
      try {
        // The first process of a deployment owns its state and folder (the others stop before it).
        if (!shared) await removeDeploymentState(redis, prefix, s3, bucket);
      } finally {
        redis.disconnect();
        s3.destroy();
        if (!shared) await removeTemporaryDirectory(dir);
      }
    },
  };
}

/** Whether `child` came to listen on `port` (not another process that took the port first, a test server of another CA). */
async function waitForPort(port: number, child: ChildProcess): Promise<boolean> {
  // Generous: a loaded CI machine can take many seconds to start a Node process.
  for (let attempt = 0; attempt < 300 && child.exitCode === null; attempt++) {
    if (child.pid !== undefined && listensOn(child.pid, port)) return true;
    await sleep(100);
  }
  return false;
}
