import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, processAlive, stopProcess, waitFor } from './processes.ts';

export interface RedisProcess {
  readonly port: number;
  readonly pid: number;
}

function commandExists(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/** Debian's redis-server, installed when missing and we are root; a clear error otherwise. */
export function ensureRedisInstalled(): void {
  if (commandExists('redis-server')) return;
  if (process.getuid?.() !== 0) {
    throw new Error('redis-server is not installed: run `sudo apt-get install -y redis-server` (Redis 7) and try again');
  }
  console.error('services: installing redis-server with apt-get ...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', 'redis-server'], { stdio: 'inherit', env });
  // The package starts a system Redis on 6379 where systemd runs; we never use it.
}

/**
 * True only when the Redis on this port is the one we started: a PONG from somebody
 * else's Redis on a reused port is the trap (infra.md), so compare process ids.
 */
export async function isOurRedis(redis: RedisProcess): Promise<boolean> {
  if (!processAlive(redis.pid)) return false;
  const client = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    const info = await client.info('server');
    return new RegExp(`^process_id:${redis.pid}\\r?$`, 'm').test(info);
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** Starts a daemonized redis-server with AOF on, on a free loopback port. */
export async function startRedis(dataDir: string): Promise<RedisProcess> {
  ensureRedisInstalled();
  const dir = join(dataDir, 'redis');
  mkdirSync(dir, { recursive: true });
  const pidFile = join(dir, 'redis.pid');
  const logFile = join(dir, 'redis.log');
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    execFileSync('redis-server', [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--daemonize', 'yes',
      '--dir', dir,
      '--appendonly', 'yes',
      '--appendfsync', 'everysec',
      '--save', '',
      '--pidfile', pidFile,
      '--logfile', logFile,
    ]);
    const started = await waitFor(async () => {
      if (!existsSync(pidFile)) return false;
      return isOurRedis({ port, pid: Number(readFileSync(pidFile, 'utf8')) });
    }, 10_000);
    if (started) return { port, pid: Number(readFileSync(pidFile, 'utf8')) };
    const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : 0;
    if (pid > 0) await stopProcess(pid);
    if (attempt >= 3) throw new Error(`redis-server did not start; last lines of ${logFile}:\n${tail(logFile)}`);
  }
}

export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
