import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, portOpen, waitFor } from '../../scripts/services/processes.ts';
import { ensureRedisInstalled } from '../../scripts/services/redis.ts';

/** A Redis of a test's own (the shared one must not be made a replica), in memory, with a client to command it. */
export interface TestRedis {
  readonly port: number;
  readonly url: string;
  /** A connection for the test's own commands (REPLICAOF, ROLE). */
  readonly admin: Redis;
  readonly stop: () => Promise<void>;
}

export async function startTestRedis(): Promise<TestRedis> {
  ensureRedisInstalled();
  const port = await freePort();
  // A replica's full sync writes a snapshot even with saving off: into a folder of its own.
  const dir = await mkdtemp(join(tmpdir(), 'meshbox-test-redis-'));
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  if (!(await waitFor(() => portOpen(port), 10_000))) {
    child.kill('SIGKILL');
    throw new Error(`redis-server did not start on port ${port}`);
  }
  const admin = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    admin,
    stop: async () => {
      admin.disconnect();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGKILL');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
