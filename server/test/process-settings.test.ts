import { randomUUID } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { ensureLocalServices } from '../../scripts/services/index.ts';
import { fingerprintMatches, keyFingerprint } from '../src/store/key-fingerprint.ts';
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

/** The Redis client of a process whose second command waits for `gate`: a start-up stalled a moment (a busy event loop) after its first round trip. */
function stalledAfterFirstCommand(redis: RedisClient, gate: Promise<void>, reached: () => void): RedisClient {
  let calls = 0;
  return new Proxy(redis, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      if (!['evalsha', 'eval', 'hset', 'hgetall', 'hdel'].includes(String(property))) return value.bind(target);
      return async (...args: unknown[]) => {
        if (++calls === 2) {
          reached();
          await gate;
        }
        return (value as (...given: unknown[]) => Promise<unknown>).apply(target, args);
      };
    },
  });
}

test('two processes starting at once with other settings: one refuses, whatever the order of their steps in Redis (one stalled between its first and second command)', async (t) => {
  const { redis, keys } = await deployment(t);
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let reached!: () => void;
  const atSecondCommand = new Promise<void>((resolve) => (reached = resolve));
  const stalled = new ProcessSettingsStore(stalledAfterFirstCommand(redis, gate, reached), keys, settings, 1000);
  const stalledJoin = stalled.join();
  await atSecondCommand;
  const other = new ProcessSettingsStore(redis, keys, { MESHBOX_INBOX_EXPIRY_SECONDS: 864_000 }, 1000);
  const otherRefused = await other.join();
  open();
  const stalledRefused = await stalledJoin;
  t.is(otherRefused.length + stalledRefused.length, 1, `other refused: ${JSON.stringify(otherRefused)}, stalled refused: ${JSON.stringify(stalledRefused)}`);
});

test('a process started with another shared key is refused, naming it without a value; one with the same key joins; Redis holds no key, only a fingerprint under the running processes\' salt', async (t) => {
  const { redis, keys } = await deployment(t);
  const sharedKey = 'the deployment shared key';
  const running = new ProcessSettingsStore(redis, keys, settings, 1000, { MESHBOX_SHARED_KEY: sharedKey });
  t.deepEqual(await running.join(), []);
  const other = new ProcessSettingsStore(redis, keys, settings, 1000, { MESHBOX_SHARED_KEY: 'another shared key' });
  t.deepEqual(await other.join(), [{ name: 'MESHBOX_SHARED_KEY' }], 'named, without a value');
  const alike = new ProcessSettingsStore(redis, keys, settings, 1000, { MESHBOX_SHARED_KEY: sharedKey });
  t.deepEqual(await alike.join(), []);
  const reports = Object.values(await redis.hgetall(keys.processSettings));
  t.is(reports.length, 2, 'the refused one withdrew');
  const fingerprints = reports.map((text) => (JSON.parse(text) as { settings: Record<string, string> }).settings.MESHBOX_SHARED_KEY);
  t.false(reports.some((text) => text.includes(sharedKey)));
  t.is(fingerprints[0], fingerprints[1], "under the running process's salt: a start hashes its key once, whatever the processes running");
});

test("a key's fingerprint matches that key only, under any salt: processes that started at once, each under a salt of its own, still tell the same key", async (t) => {
  const key = 'the deployment shared key';
  const [first, second] = [await keyFingerprint(key), await keyFingerprint(key)];
  t.not(first, second, 'salted afresh');
  t.true(await fingerprintMatches(first, key));
  t.true(await fingerprintMatches(second, key));
  t.false(await fingerprintMatches(first, 'another shared key'));
  t.false(await fingerprintMatches('not a fingerprint', key));
  t.is(await keyFingerprint(key, first), first, 'under the salt of another: the same value for the same key');
  t.not(await keyFingerprint('another shared key', first), first);
});

test("a process starting among processes of salts of their own (started at once) fingerprints its key under the earliest one's salt, the one it is compared with", async (t) => {
  const { redis, keys } = await deployment(t);
  const secrets = { MESHBOX_SHARED_KEY: 'the deployment shared key' };
  t.deepEqual(await new ProcessSettingsStore(redis, keys, settings, 1000, secrets).join(), []);
  // A later process under a salt of its own, as one that started at the same moment has: made apart, its report then put beside the first's, first in the hash (whose fields keep no set order).
  const apart = await deployment(t);
  t.deepEqual(await new ProcessSettingsStore(apart.redis, apart.keys, settings, 1000, secrets).join(), []);
  const [[laterId, later]] = Object.entries(await apart.redis.hgetall(apart.keys.processSettings)) as [[string, string]];
  const [[earliestId, earliest]] = Object.entries(await redis.hgetall(keys.processSettings)) as [[string, string]];
  await redis.del(keys.processSettings);
  await redis.hset(keys.processSettings, laterId, later, earliestId, earliest);
  const fingerprintOf = (report: string) => (JSON.parse(report) as { settings: Record<string, string> }).settings.MESHBOX_SHARED_KEY;
  t.not(fingerprintOf(later), fingerprintOf(earliest));

  const starting = new ProcessSettingsStore(redis, keys, settings, 1000, secrets);
  t.deepEqual(await starting.join(), []);
  const reports = Object.entries(await redis.hgetall(keys.processSettings)).filter(([id]) => id !== laterId && id !== earliestId);
  t.is(reports.length, 1);
  t.is(fingerprintOf(reports[0]![1]), fingerprintOf(earliest));
});

test('while the earliest running process is of a release that reported no key (a rolling upgrade), a process with another key than a later running one is refused', async (t) => {
  const { redis, keys } = await deployment(t);
  t.deepEqual(await new ProcessSettingsStore(redis, keys, settings, 1000).join(), []);
  const upgraded = new ProcessSettingsStore(redis, keys, settings, 1000, { MESHBOX_SHARED_KEY: 'the deployment shared key' });
  t.deepEqual(await upgraded.join(), [], 'the older one does not say its key: not compared');
  const other = new ProcessSettingsStore(redis, keys, settings, 1000, { MESHBOX_SHARED_KEY: 'another shared key' });
  t.deepEqual(await other.join(), [{ name: 'MESHBOX_SHARED_KEY' }], 'compared with the upgraded one');
});
