/**
 * `node scripts/redis-cluster.ts start|stop [--data-dir DIR] [--masters N]`: a Redis Cluster on
 * loopback from Debian's redis-server, to run meshbox on as production would
 * (MESHBOX_REDIS_CLUSTER=true). `start` prints the variables to use (with the local S3 server's,
 * which it starts if need be: the server takes Redis and S3 settings together); `stop` stops its nodes.
 */
import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../shared/src/dev-paths.ts';
import { ensureLocalServices } from './services/index.ts';
import { startRedisCluster, stopRedisCluster } from './services/redis-cluster.ts';

const usage = 'usage: node scripts/redis-cluster.ts start|stop [--data-dir DIR] [--masters N]';

try {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { 'data-dir': { type: 'string' }, masters: { type: 'string', default: '3' } },
  });
  const dataDir = resolve(values['data-dir'] ?? resolve(REPO_ROOT, 'var/redis-cluster'));
  const masters = Number(values.masters);
  if (positionals.length !== 1 || !Number.isInteger(masters) || masters < 3) throw new Error(`${usage} (at least 3 masters)`);
  if (positionals[0] === 'start') {
    // A fresh cluster each time: nodes.conf files of an old one would name ports now gone.
    await stopRedisCluster(dataDir);
    rmSync(dataDir, { recursive: true, force: true });
    const cluster = await startRedisCluster(dataDir, masters);
    const { s3 } = await ensureLocalServices();
    console.log(`MESHBOX_REDIS_CLUSTER=true`);
    console.log(`MESHBOX_REDIS_URL=${cluster.redisUrl}`);
    console.log(`MESHBOX_S3_ENDPOINT=${s3.endpoint}`);
    console.log(`MESHBOX_S3_REGION=${s3.region}`);
    console.log(`MESHBOX_S3_ACCESS_KEY_ID=${s3.accessKeyId}`);
    console.log(`MESHBOX_S3_SECRET_ACCESS_KEY=${s3.secretAccessKey}`);
  } else if (positionals[0] === 'stop') {
    await stopRedisCluster(dataDir);
    console.log('redis cluster stopped');
  } else {
    throw new Error(usage);
  }
} catch (error) {
  console.error(`redis-cluster: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
