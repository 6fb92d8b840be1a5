import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { processAlive } from '../../shared/src/processes.ts';

export { processAlive };

/** The command line of a live process ('' when unknown), to tell our process from a pid reused by another. */
export function commandLine(pid: number): string {
  if (!processAlive(pid)) return '';
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    try {
      return execFileSync('ps', ['-o', 'args=', '-p', String(pid)], { encoding: 'utf8' }).trim();
    } catch {
      return '';
    }
  }
}

/** Stops a process: SIGTERM (Redis then flushes its AOF), and SIGKILL if it has not gone within the grace period. */
export async function stopProcess(pid: number, graceMs = 10_000): Promise<void> {
  if (!signal(pid, 'SIGTERM')) return;
  if (await waitFor(async () => !processAlive(pid), graceMs, 50)) return;
  signal(pid, 'SIGKILL');
  if (!(await waitFor(async () => !processAlive(pid), 5_000, 20))) throw new Error(`process ${pid} survived SIGKILL`);
}

function signal(pid: number, name: NodeJS.Signals): boolean {
  try {
    process.kill(pid, name);
    return true;
  } catch {
    return false; // already gone
  }
}

/** A loopback port free right now. Another process may take it before we use it: callers must verify. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** TCP socket states in /proc/net/tcp: 0A is LISTEN. */
const LISTENING = '0A';

/**
 * Whether process `pid` itself listens on TCP `port` (Linux: its sockets, by inode, in /proc): a
 * process given a port from freePort() may find it taken by another by the time it binds, and
 * then the port answers all the same, for that other process.
 */
export function listensOn(pid: number, port: number): boolean {
  const listeners = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readOrEmpty(table).split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const [, local, , state, , , , , , inode] = line.trim().split(/\s+/);
      if (state === LISTENING && inode && Number.parseInt(local?.split(':')[1] ?? '', 16) === port) listeners.add(`socket:[${inode}]`);
    }
  }
  if (listeners.size === 0) return false;
  let descriptors: string[];
  try {
    descriptors = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false; // gone
  }
  return descriptors.some((descriptor) => {
    try {
      return listeners.has(readlinkSync(`/proc/${pid}/fd/${descriptor}`));
    } catch {
      return false; // closed meanwhile
    }
  });
}

function readOrEmpty(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Whether something accepts TCP connections at host:port. */
export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Polls `check` until it returns true (→ true) or the time is up (→ false). A throwing check counts as false. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}

/** The positive integer in a file (a pidfile, a port file), or undefined. */
export function readInteger(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Replaces a file in one step, so a concurrent reader sees the old or the new content, never half. */
export function writeFileAtomic(file: string, content: string): void {
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, content);
  renameSync(temporary, file);
}

/** The last lines of a log file, for error messages. */
export function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * How long a service of ours that is alive but not answering is waited for before it is taken for
 * hung and replaced. Others (the test files running meanwhile) are using it, and a replacement
 * listens on a new port, cutting them all off; on a loaded machine a busy s3rver (a large object)
 * was seen silent past 15 s, and replaced, failing every test file then running.
 */
export const BUSY_SERVICE_PATIENCE_MS = 120_000;
