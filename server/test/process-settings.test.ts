import { randomUUID } from 'node:crypto';
import test from 'ava';
import { ensureLocalServices } from '../../scripts/services/index.ts';
import { redisKeys } from '../src/store/keys.ts';
import { longestMailboxCacheMs, ProcessSettingsStore } from '../src/store/process-settings.ts';
import { openRedis } from '../src/store/redis-client.ts';

test("how long a change to a mailbox may go unseen is the longest mailbox cache time of the processes running (each may have its own), not of those gone", async (t) => {
  const { redisUrl } = await ensureLocalServices();
  const prefix = `test:${randomUUID()}:`;
  const redis = openRedis({ redisUrl, redisCluster: false });
  const keys = redisKeys(prefix);
  t.teardown(async () => {
    await redis.del(keys.processSettings);
    redis.disconnect();
  });
  const now = new Date();
  t.is(await longestMailboxCacheMs(redis, keys, now), undefined, 'none running');
  const settings = { MESHBOX_INBOX_EXPIRY_SECONDS: 432_000 };
  const quick = new ProcessSettingsStore(redis, keys, settings, 1000);
  const slow = new ProcessSettingsStore(redis, keys, settings, 30_000);
  t.deepEqual(await quick.join(now), []);
  t.deepEqual(await slow.join(now), []);
  t.is(await longestMailboxCacheMs(redis, keys, now), 30_000);
  t.is(await longestMailboxCacheMs(redis, keys, new Date(now.getTime() + 36_000)), undefined, 'not heard from since: gone');
  await slow.withdraw();
  t.is(await longestMailboxCacheMs(redis, keys, now), 1000);
});
