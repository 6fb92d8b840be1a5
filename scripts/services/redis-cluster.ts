import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { daemonArguments, ensureRedisInstalled, pingAndInfo } from './redis.ts';
import { readInteger, stopProcess, tail, waitFor } from './processes.ts';

/**
 * A Redis Cluster of masters on loopback, from Debian's redis-server and redis-cli: what a
 * production cluster looks like to meshbox (slots spread over nodes, MOVED redirections),
 * small enough for a test. No replicas: failover is Redis's business, not ours to test.
 */
export interface RedisCluster {
  /** Seed URLs, comma-separated, as MESHBOX_REDIS_URL takes them. */
  readonly redisUrl: string;
  readonly ports: readonly number[];
  /** Kills one node (-9), as a crash would. */
  readonly killNode: (port: number) => void;
  /** Starts a node killed before; it rejoins with its slots (its nodes.conf is kept). */
  readonly restartNode: (port: number) => Promise<void>;
  readonly stop: () => Promise<void>;
}

const START_TIMEOUT_MS = 15_000;

export async function startRedisCluster(dataDir: string, masters = 3): Promise<RedisCluster> {
  ensureRedisInstalled();
  const nodes: { port: number; pidFile: string; logFile: string }[] = [];
  const stop = (): Promise<void> => stopRedisCluster(dataDir);
  try {
    for (let i = 0; i < masters; i++) nodes.push(await startNode(dataDir, await freeClusterPort()));
    const addresses = nodes.map(({ port }) => `127.0.0.1:${port}`);
    execFileSync('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'pipe' });
    const everyNodeSeesItWhole = async (): Promise<boolean> =>
      nodes.every(({ port }) => /cluster_state:ok/.test(execFileSync('redis-cli', ['-p', String(port), 'cluster', 'info'], { encoding: 'utf8' })));
    if (!(await waitFor(everyNodeSeesItWhole, START_TIMEOUT_MS))) throw new Error('the cluster did not reach cluster_state:ok');
  } catch (error) {
    await stop();
    const logs = nodes.map(({ logFile }) => `${logFile}:\n${tail(logFile)}`).join('\n');
    throw new Error(`Redis Cluster did not start: ${error instanceof Error ? error.message : String(error)}\n${logs}`);
  }
  const ports = nodes.map(({ port }) => port);
  return {
    redisUrl: ports.map((port) => `redis://127.0.0.1:${port}`).join(','),
    ports,
    killNode: (port) => {
      const pid = readInteger(join(dataDir, `node-${port}`, 'redis.pid'));
      if (pid !== undefined) process.kill(pid, 'SIGKILL');
    },
    restartNode: async (port) => {
      await startNode(dataDir, port);
    },
    stop,
  };
}

/** Stops every node started in dataDir (their pidfiles say which processes). */
export async function stopRedisCluster(dataDir: string): Promise<void> {
  let folders: string[];
  try {
    folders = readdirSync(dataDir).filter((name) => name.startsWith('node-'));
  } catch {
    return; // nothing was started here
  }
  for (const folder of folders) {
    const pid = readInteger(join(dataDir, folder, 'redis.pid'));
    if (pid !== undefined) await stopProcess(pid);
  }
}

async function startNode(dataDir: string, port: number): Promise<{ port: number; pidFile: string; logFile: string }> {
  const dir = join(dataDir, `node-${port}`);
  mkdirSync(dir, { recursive: true });
  const node = { port, pidFile: join(dir, 'redis.pid'), logFile: join(dir, 'redis.log') };
  const clusterArguments = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000'];
  execFileSync('redis-server', [...daemonArguments({ ...node, dir }), ...clusterArguments], { stdio: 'pipe' });
  if (!(await waitFor(async () => (await pingAndInfo(port)) !== undefined, START_TIMEOUT_MS))) {
    throw new Error(`cluster node on port ${port} did not answer`);
  }
  return node;
}

/** A port free with its cluster-bus port (port + 10000) free too, so both below 65536. */
async function freeClusterPort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    if ((await portFree(port)) && (await portFree(port + 10_000))) return port;
  }
  throw new Error('no free port pair for a cluster node');
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
