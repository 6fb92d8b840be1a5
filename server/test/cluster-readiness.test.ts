import test from 'ava';
import { Cluster } from 'ioredis';
import { pingEveryMaster } from '../src/store/redis-client.ts';

/**
 * A cluster client as it is mid-failover: CLUSTER SLOTS names two masters, of which it knows
 * only the first, and that one's ping fails a moment later (its connection closing).
 */
function clusterMidFailover(): Cluster {
  const reachable = {
    options: { host: '127.0.0.1', port: 7001 },
    ping: () => new Promise((_, fail) => setTimeout(() => fail(new Error('Connection is closed.')), 50)),
  };
  return Object.assign(Object.create(Cluster.prototype) as Cluster, {
    ping: async () => 'PONG',
    cluster: async () => [
      [0, 8191, ['127.0.0.1', 7001, 'a']],
      [8192, 16383, ['127.0.0.1', 7002, 'b']],
    ],
    nodes: () => [reachable],
  });
}

test('a readiness check that finds a master the cluster client does not know fails, and leaves no ping behind to reject unhandled', async (t) => {
  const unhandled: unknown[] = [];
  const note = (reason: unknown): void => void unhandled.push(reason);
  process.on('unhandledRejection', note);
  t.teardown(() => process.off('unhandledRejection', note));
  await t.throwsAsync(pingEveryMaster(clusterMidFailover()), { message: 'Redis Cluster master 127.0.0.1:7002 is not connected' });
  await new Promise((settled) => setTimeout(settled, 200));
  t.deepEqual(unhandled, []);
});
