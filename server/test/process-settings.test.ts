import { randomUUID } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { ensureLocalServices } from '../../scripts/services/index.ts';
import { redisKeys, type RedisKeys } from '../src/store/keys.ts';
import { longestMailboxCacheMs, ProcessSettingsStore } from '../src/store/process-settings.ts';
import { openRedis, type RedisClient } from '../src/store/redis-client.ts';

const settings = { MESHBOX_INBOX_EXPIRY_SECONDS: 432_000 };

/** A deployment's prefix of its own on the local Redis, removed after the test. */
async function deployment(t: ExecutionContext): Promise<{ redis: RedisClient; keys: RedisKeys }> {
  const { redisUrl } = await ensureLocalServices();
  const redis = openRedis({ redisUrl, redisCluster: false });
  const keys = redisKeys(`test:${randomUUID()}:`);
  t.teardown(async () => {
    await redis.del(keys.processSettings);
    redis.disconnect();
  });
  return { redis, keys };
}

/** Runs `action` with this process's clock `offsetMs` off, as another host's would be. */
async function withClockOff<T>(offsetMs: number, action: () => Promise<T>): Promise<T> {
  const realNow = Date.now;
  Date.now = () => realNow() + offsetMs;
  try {
    return await action();
  } finally {
    Date.now = realNow;
  }
}

test("how long a change to a mailbox may go unseen is the longest mailbox cache time of the processes running (each may have its own), not of those gone", async (t) => {
  const { redis, keys } = await deployment(t);
  t.is(await longestMailboxCacheMs(redis, keys), undefined, 'none running');
  const quick = new ProcessSettingsStore(redis, keys, settings, 1000);
  const slow = new ProcessSettingsStore(redis, keys, settings, 30_000);
  t.deepEqual(await quick.join(), []);
  t.deepEqual(await slow.join(), []);
  t.is(await longestMailboxCacheMs(redis, keys), 30_000);
  // The slow one's last report 36 s old (aged by hand): not heard from since, so gone.
  for (const [processId, text] of Object.entries(await redis.hgetall(keys.processSettings))) {
    const report = JSON.parse(text) as { at: number; mailboxCacheMs: number };
    if (report.mailboxCacheMs === 30_000) await redis.hset(keys.processSettings, processId, JSON.stringify({ ...report, at: report.at - 36_000 }));
  }
  t.is(await longestMailboxCacheMs(redis, keys), 1000);
  await quick.withdraw();
  t.is(await longestMailboxCacheMs(redis, keys), undefined);
});

test("processes are dated by Redis's clock, not their hosts': one started with other settings on a host whose clock runs a minute ahead, or a moment behind, is refused, and the running one's report stays", async (t) => {
  const { redis, keys } = await deployment(t);
  const running = new ProcessSettingsStore(redis, keys, settings, 1000);
  t.deepEqual(await running.join(), []);
  for (const offsetMs of [60_000, -2_000]) {
    const other = new ProcessSettingsStore(redis, keys, { MESHBOX_INBOX_EXPIRY_SECONDS: 60 }, 1000);
    const disagreements = await withClockOff(offsetMs, () => other.join());
    t.deepEqual(disagreements, [{ name: 'MESHBOX_INBOX_EXPIRY_SECONDS', here: 60, there: 432_000 }], `clock ${offsetMs} ms off`);
    t.is(Object.keys(await redis.hgetall(keys.processSettings)).length, 1, 'the running one only: the refused one withdrew');
  }
});
