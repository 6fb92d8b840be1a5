import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { withFileLock } from './lock.ts';
import { writeFileAtomic } from './processes.ts';
import { ensureRedis, isOurRedis, type RedisProcess, stopRedis } from './redis.ts';
import { ensureS3, isOurS3, S3RVER_CREDENTIALS, type S3Process, stopS3 } from './s3.ts';

/**
 * The real Redis and S3-compatible server meshbox uses in development, tests and CI:
 * started on demand on free loopback ports, data under var/ (git-ignored), reused while
 * they run, so every test process and the dev server share one pair.
 */
export interface LocalServices {
  readonly redisUrl: string;
  readonly s3: {
    readonly endpoint: string;
    readonly region: string;
    readonly accessKeyId: string;
    readonly secretAccessKey: string;
  };
  /** The processes, for benchmarks that measure their CPU time. */
  readonly pids: { readonly redis: number; readonly s3: number };
}

export interface LocalServicesOptions {
  /** Where data, logs, pidfiles and services.json live; default `var/services` in the repository. */
  readonly dataDir?: string;
}

/** Recorded in `<dataDir>/services.json`. */
interface ServicesState {
  readonly redis?: RedisProcess;
  readonly s3?: S3Process;
}

export const DEFAULT_DATA_DIR = resolve(import.meta.dirname, '../../var/services');

function readState(dataDir: string): ServicesState {
  try {
    return JSON.parse(readFileSync(join(dataDir, 'services.json'), 'utf8')) as ServicesState;
  } catch {
    return {};
  }
}

const redisUrl = (redis: RedisProcess): string => `redis://127.0.0.1:${redis.port}`;
const s3Endpoint = (s3: S3Process): string => `http://127.0.0.1:${s3.port}`;

/**
 * Reuses the recorded Redis and s3rver when they are alive, answering and really ours;
 * (re)starts whichever is not. Safe to call from several processes at once.
 */
export async function ensureLocalServices(options: LocalServicesOptions = {}): Promise<LocalServices> {
  const dataDir = resolve(options.dataDir ?? DEFAULT_DATA_DIR);
  mkdirSync(dataDir, { recursive: true });
  return withFileLock(join(dataDir, 'services.lock'), async () => {
    const state = readState(dataDir);
    const [redis, s3] = await Promise.allSettled([ensureRedis(dataDir, state.redis), ensureS3(dataDir, state.s3)]);
    // Record whatever runs, even if the other failed, so no started process is forgotten.
    writeFileAtomic(join(dataDir, 'services.json'), `${JSON.stringify({
      redis: redis.status === 'fulfilled' ? redis.value : state.redis,
      s3: s3.status === 'fulfilled' ? s3.value : state.s3,
    }, null, 2)}\n`);
    if (redis.status === 'rejected') throw redis.reason;
    if (s3.status === 'rejected') throw s3.reason;
    return {
      redisUrl: redisUrl(redis.value),
      s3: {
        endpoint: s3Endpoint(s3.value),
        region: S3RVER_CREDENTIALS.region,
        accessKeyId: S3RVER_CREDENTIALS.accessKeyId,
        secretAccessKey: S3RVER_CREDENTIALS.secretAccessKey,
      },
      pids: { redis: redis.value.pid, s3: s3.value.pid },
    };
  });
}

/** Stops both services (SIGTERM, then SIGKILL) and forgets them; their data stays under dataDir. */
export async function stopLocalServices(options: LocalServicesOptions = {}): Promise<void> {
  const dataDir = resolve(options.dataDir ?? DEFAULT_DATA_DIR);
  mkdirSync(dataDir, { recursive: true });
  await withFileLock(join(dataDir, 'services.lock'), async () => {
    const state = readState(dataDir);
    await Promise.all([stopRedis(state.redis), stopS3(dataDir, state.s3)]);
    rmSync(join(dataDir, 'services.json'), { force: true });
  });
}

export interface LocalServicesStatus {
  /** `redis://127.0.0.1:PORT` when our Redis is running and answering, else undefined. */
  readonly redis: string | undefined;
  /** `http://127.0.0.1:PORT` when our s3rver is running and answering, else undefined. */
  readonly s3: string | undefined;
}

/** Where each service answers, without starting anything. */
export async function localServicesStatus(options: LocalServicesOptions = {}): Promise<LocalServicesStatus> {
  const dataDir = resolve(options.dataDir ?? DEFAULT_DATA_DIR);
  const state = readState(dataDir);
  const [redisOk, s3Ok] = await Promise.all([
    state.redis ? isOurRedis(dataDir, state.redis) : false,
    state.s3 ? isOurS3(dataDir, state.s3) : false,
  ]);
  return {
    redis: redisOk && state.redis ? redisUrl(state.redis) : undefined,
    s3: s3Ok && state.s3 ? s3Endpoint(state.s3) : undefined,
  };
}

/**
 * Stops both services and deletes their data directory: whatever interrupted tests and
 * benchmarks left behind goes with it, and so do the demo mailboxes.
 */
export async function resetLocalServices(options: LocalServicesOptions = {}): Promise<void> {
  await stopLocalServices(options);
  rmSync(resolve(options.dataDir ?? DEFAULT_DATA_DIR), { recursive: true, force: true });
}
