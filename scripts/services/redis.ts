import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { BUSY_SERVICE_PATIENCE_MS, commandLine, freePort, processAlive, readInteger, stopProcess, tail, waitFor } from './processes.ts';

export interface RedisProcess {
  readonly port: number;
  readonly pid: number;
}

const START_TIMEOUT_MS = 15_000;

function redisPaths(dataDir: string): { dir: string; pidFile: string; logFile: string } {
  const dir = join(dataDir, 'redis');
  return { dir, pidFile: join(dir, 'redis.pid'), logFile: join(dir, 'redis.log') };
}

/** Debian's redis-server: installed with apt-get when missing and we are root, a clear error otherwise. */
export function ensureRedisInstalled(): void {
  if (spawnSync('sh', ['-c', 'command -v redis-server'], { stdio: 'ignore' }).status === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error('redis-server is not installed: run `sudo apt-get install -y redis-server` (Debian/Ubuntu, Redis 7) and try again');
  }
  console.error('services: installing redis-server with apt-get ...');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update'], { stdio: ['ignore', 'inherit', 'inherit'], env });
  execFileSync('apt-get', ['install', '-y', 'redis-server'], { stdio: ['ignore', 'inherit', 'inherit'], env });
  // Where systemd runs, the package also starts a system Redis on 6379. We never talk to
  // it: ours gets its own port, and isOurRedis checks the process id behind that port.
}

/**
 * Sends PING and INFO server over a raw socket. Returns INFO's text only when PING answered
 * PONG (a Redis still loading its AOF answers -LOADING), undefined on any error or timeout.
 */
export function pingAndInfo(port: number, timeoutMs = 2_000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = '';
    const finish = (info: string | undefined): void => {
      socket.destroy();
      resolve(info);
    };
    socket.setTimeout(timeoutMs, () => finish(undefined));
    socket.on('error', () => finish(undefined));
    socket.on('close', () => finish(undefined));
    socket.on('connect', () => socket.write('PING\r\nINFO server\r\n'));
    socket.on('data', (data: Buffer) => {
      received += data.toString('latin1'); // one char per byte, so lengths are byte counts
      const pong = '+PONG\r\n';
      if (received.length >= pong.length && !received.startsWith(pong)) return finish(undefined);
      const header = /^\$(\d+)\r\n/.exec(received.slice(pong.length));
      if (!header?.[1]) return;
      const start = pong.length + header[0].length;
      const length = Number(header[1]);
      if (received.length >= start + length) finish(received.slice(start, start + length));
    });
  });
}

/**
 * Our Redis, ready: the port answers PING, and the process behind it is the one whose pid
 * redis-server wrote to our pidfile. A PONG alone could come from somebody else's Redis
 * on a reused port of a shared machine.
 */
export async function isOurRedis(dataDir: string, redis: RedisProcess): Promise<boolean> {
  if (readInteger(redisPaths(dataDir).pidFile) !== redis.pid || !processAlive(redis.pid)) return false;
  const info = await pingAndInfo(redis.port);
  return info !== undefined && new RegExp(`^process_id:${redis.pid}\\r?$`, 'm').test(info);
}

/** Whether the pid is still the redis-server we started on that port (its process title says so). */
function isOurRedisProcess(redis: RedisProcess): boolean {
  const [program, address] = commandLine(redis.pid).split(/\s+/);
  return (program?.endsWith('redis-server') ?? false) && address === `127.0.0.1:${redis.port}`;
}

/** The recorded Redis when it is (or soon becomes) ready, else a freshly started one. */
export async function ensureRedis(dataDir: string, recorded: RedisProcess | undefined): Promise<RedisProcess> {
  if (recorded && isOurRedisProcess(recorded)) {
    // Alive: give it time to finish loading its AOF (or to answer on a loaded machine) rather than start a second Redis on the same files.
    if (await waitFor(() => isOurRedis(dataDir, recorded), BUSY_SERVICE_PATIENCE_MS)) return recorded;
    await stopProcess(recorded.pid);
  }
  return startRedis(dataDir);
}

export async function stopRedis(recorded: RedisProcess | undefined): Promise<void> {
  if (recorded && isOurRedisProcess(recorded)) await stopProcess(recorded.pid);
}

/** redis-server's arguments for a daemon on loopback with AOF on, its files in `dir`. */
export function daemonArguments(node: { port: number; dir: string; pidFile: string; logFile: string }): string[] {
  return [
    '--port', String(node.port),
    '--bind', '127.0.0.1',
    '--daemonize', 'yes',
    '--dir', node.dir,
    '--appendonly', 'yes',
    '--appendfsync', 'everysec',
    '--save', '', // no RDB snapshots: the AOF is the durable copy
    '--pidfile', node.pidFile,
    '--logfile', node.logFile,
  ];
}

/** Starts a daemonized redis-server with AOF on, on a free loopback port (retrying if another process takes the port first). */
async function startRedis(dataDir: string): Promise<RedisProcess> {
  ensureRedisInstalled();
  const { dir, pidFile, logFile } = redisPaths(dataDir);
  mkdirSync(dir, { recursive: true });
  for (let attempt = 1; ; attempt++) {
    // A pidfile left by a Redis killed with -9 names a pid that may since belong to anyone.
    rmSync(pidFile, { force: true });
    const logOffset = fileSize(logFile);
    const port = await freePort();
    try {
      execFileSync('redis-server', daemonArguments({ port, dir, pidFile, logFile }), { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
      throw new Error(`redis-server refused to start: ${stderr || String(error)}\nlast lines of ${logFile}:\n${tail(logFile)}`);
    }
    const bindFailed = (): boolean => newLogText(logFile, logOffset).includes(`Failed listening on port ${port}`);
    const ready = async (): Promise<boolean> => {
      const pid = readInteger(pidFile);
      return pid !== undefined && isOurRedis(dataDir, { port, pid });
    };
    // Stop waiting early when the port was taken between freePort() and the bind.
    const started = (await waitFor(async () => bindFailed() || ready(), START_TIMEOUT_MS)) && (await ready());
    const pid = readInteger(pidFile);
    if (started && pid !== undefined) return { port, pid };
    if (pid !== undefined && isOurRedisProcess({ port, pid })) await stopProcess(pid);
    if (attempt >= 3 || !bindFailed()) {
      throw new Error(`redis-server did not become ready on 127.0.0.1:${port}; last lines of ${logFile}:\n${tail(logFile)}`);
    }
  }
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function newLogText(file: string, offset: number): string {
  try {
    return readFileSync(file).subarray(offset).toString('utf8');
  } catch {
    return '';
  }
}
