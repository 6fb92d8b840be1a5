import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { REPO_ROOT } from '../../shared/src/dev-paths.ts';
import { withFileLock } from './lock.ts';
import { stopProcess } from './processes.ts';
import { isOurRedis, type RedisProcess, startRedis } from './redis.ts';
import { isOurS3, S3RVER_CREDENTIALS, type S3Process, startS3 } from './s3.ts';

/**
 * The real Redis and S3-compatible server meshbox uses in development, tests and CI:
 * started on demand on free loopback ports, data under var/ (git-ignored), reused while alive.
 */
export interface LocalServices {
  readonly redisUrl: string;
  readonly s3: {
    readonly endpoint: string;
    readonly region: string;
    readonly accessKeyId: string;
    readonly secretAccessKey: string;
  };
}

interface ServicesState {
  readonly redis?: RedisProcess;
  readonly s3?: S3Process;
}

export const DEFAULT_DATA_DIR = resolve(REPO_ROOT, 'var/services');

function readState(dataDir: string): ServicesState {
  try {
    return JSON.parse(readFileSync(join(dataDir, 'services.json'), 'utf8')) as ServicesState;
  } catch {
    return {};
  }
}

function writeState(dataDir: string, state: ServicesState): void {
  writeFileSync(join(dataDir, 'services.json'), `${JSON.stringify(state, null, 2)}\n`);
}

function describe(state: Required<ServicesState>): LocalServices {
  return {
    redisUrl: `redis://127.0.0.1:${state.redis.port}`,
    s3: {
      endpoint: `http://127.0.0.1:${state.s3.port}`,
      region: S3RVER_CREDENTIALS.region,
      accessKeyId: S3RVER_CREDENTIALS.accessKeyId,
      secretAccessKey: S3RVER_CREDENTIALS.secretAccessKey,
    },
  };
}

/** Starts whichever of the two services is not running (or not ours), and says where they are. */
export async function ensureLocalServices(options: { dataDir?: string } = {}): Promise<LocalServices> {
  const dataDir = options.dataDir ?? DEFAULT_DATA_DIR;
  mkdirSync(dataDir, { recursive: true });
  return withFileLock(join(dataDir, 'services.lock'), async () => {
    const state = readState(dataDir);
    const redis = state.redis && (await isOurRedis(state.redis)) ? state.redis : await startRedis(dataDir);
    writeState(dataDir, { ...state, redis });
    const s3 = state.s3 && (await isOurS3(state.s3)) ? state.s3 : await startS3(dataDir);
    const running = { redis, s3 };
    writeState(dataDir, running);
    return describe(running);
  });
}

/** Stops both services (their data stays under var/). */
export async function stopLocalServices(options: { dataDir?: string } = {}): Promise<void> {
  const dataDir = options.dataDir ?? DEFAULT_DATA_DIR;
  mkdirSync(dataDir, { recursive: true });
  await withFileLock(join(dataDir, 'services.lock'), async () => {
    const state = readState(dataDir);
    if (state.redis && (await isOurRedis(state.redis))) await stopProcess(state.redis.pid);
    if (state.s3 && (await isOurS3(state.s3))) await stopProcess(state.s3.pid);
    rmSync(join(dataDir, 'services.json'), { force: true });
  });
}

export interface ServiceStatus {
  readonly redis: string | undefined;
  readonly s3: string | undefined;
}

/** Where each service answers, or undefined when it is not running. */
export async function localServicesStatus(options: { dataDir?: string } = {}): Promise<ServiceStatus> {
  const state = readState(options.dataDir ?? DEFAULT_DATA_DIR);
  return {
    redis: state.redis && (await isOurRedis(state.redis)) ? `redis://127.0.0.1:${state.redis.port}` : undefined,
    s3: state.s3 && (await isOurS3(state.s3)) ? `http://127.0.0.1:${state.s3.port}` : undefined,
  };
}
