import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { freePort, listensOn, waitFor } from '../../scripts/services/processes.ts';
import { ensureRedisInstalled } from '../../scripts/services/redis.ts';
import { makeTemporaryDirectory, removeTemporaryDirectory } from './temporary-directory.ts';

/** A Redis of a test's own (the shared one must not be made a replica, run out of memory, ...), in memory, with a client to command it. */
export interface TestRedis {
  readonly port: number;
  readonly url: string;
  /** Its folder (a snapshot goes there). */
  readonly dir: string;
  /** A connection for the test's own commands (REPLICAOF, ROLE, CONFIG SET). */
  readonly admin: Redis;
  /** Makes it a replica of the Redis on this port (of loopback); whether it got in sync with it (a full copy first) within two minutes. */
  readonly replicate: (port: number) => Promise<boolean>;
  /** Kills it (SIGKILL) and starts it again on the same port and folder, with these arguments besides its own. */
  readonly restart: (args?: readonly string[]) => Promise<void>;
  readonly stop: () => Promise<void>;
}

/** `args`: more redis-server arguments (`--maxmemory-policy volatile-lru`), after the defaults (no saving, no AOF). */
export async function startTestRedis(args: readonly string[] = []): Promise<TestRedis> {
  ensureRedisInstalled();
  let port = await freePort();
  // A replica's full sync writes a snapshot even with saving off: into a folder of its own.
  const dir = await makeTemporaryDirectory('test-redis');
  let child: ChildProcess | undefined;
  /** Whether it started; false when it exited (its port taken by another process since freePort()). */
  const start = async (more: readonly string[]): Promise<boolean> => {
    const started = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...args, ...more], { stdio: 'ignore' });
    child = started;
    const exited = (): boolean => started.exitCode !== null || started.signalCode !== null;
    const listening = (): boolean => started.pid !== undefined && listensOn(started.pid, port);
    await waitFor(async () => exited() || listening(), 10_000);
    if (listening()) return true;
    if (exited()) return false;
    started.kill('SIGKILL');
    throw new Error(`redis-server did not start on port ${port}`);
  };
  for (let attempt = 1; !(await start([])); attempt++) {
    if (attempt === 3) throw new Error(`redis-server exited at start three times (ports taken?)`);
    port = await freePort();
  }
  const kill = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  };
  const admin = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    admin,
    replicate: async (primaryPort) => {
      await admin.replicaof('127.0.0.1', String(primaryPort));
      return waitFor(async () => /^master_link_status:up/m.test(await admin.info('replication')), 120_000, 50);
    },
    restart: async (more = []) => {
      await kill();
      if (!(await start(more))) throw new Error(`redis-server exited at restart on port ${port}`);
    },
    stop: async () => {
      admin.disconnect();
      await kill();
      await removeTemporaryDirectory(dir);
    },
  };
}

/** A number of a Redis's INFO replication section (`master_repl_offset`, `slave_repl_offset`); -1 when it has none. */
export async function replicationOffset(redis: Redis, field: string): Promise<number> {
  return Number(new RegExp(`${field}:(\\d+)`).exec(await redis.info('replication'))?.[1] ?? -1);
}
