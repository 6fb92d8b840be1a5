// Redis refusing or unable to serve for a while, each on a redis-server of the test's own.
import { rm } from 'node:fs/promises';
import test, { type ExecutionContext } from 'ava';
import { Redis } from 'ioredis';
import { waitFor } from '../../scripts/services/processes.ts';
import { capturedLogger } from '../../server/test/support/captured-log.ts';
import { type TestServerOptions, startTestServer, type TestMailbox, type TestServer } from '../support/harness.ts';
import { mailboxRequest, sendMessage } from '../support/http.ts';
import { startTestRedis, type TestRedis } from '../support/redis-server.ts';

/** A server on a Redis of the test's own (started with `args`), with a sender and a recipient. */
async function onOwnRedis(
  t: ExecutionContext,
  args: readonly string[],
  use: (setting: { redis: TestRedis; server: TestServer; lab: TestMailbox; gp: TestMailbox }) => Promise<void>,
  options: TestServerOptions = {},
): Promise<void> {
  const redis = await startTestRedis(args);
  const server = await startTestServer({ ...options, redisUrl: redis.url, worker: false });
  t.teardown(async () => {
    await server.close();
    await redis.stop();
  });
  await use({ redis, server, lab: await server.createMailbox(), gp: await server.createMailbox() });
}

/** A send and an inbox count (its token claim is a write) are both answered 503: come back later. */
async function bothRefused503(t: ExecutionContext, server: TestServer, lab: TestMailbox, gp: TestMailbox): Promise<void> {
  const sent = await mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox`, headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'W' }, body: 'x' });
  t.is(sent.status, 503, sent.body.toString());
  const count = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/count` });
  t.is(count.status, 503, count.body.toString());
}

test('a Redis refusing writes for want of the replicas it must write to (NOREPLICAS) is answered 503, as READONLY and OOM are; logged once for many requests', async (t) => {
  const { logger, lines } = capturedLogger();
  await onOwnRedis(
    t,
    [],
    async ({ redis, server, lab, gp }) => {
      await redis.admin.config('SET', 'min-replicas-to-write', '1');
      for (let i = 0; i < 5; i++) await bothRefused503(t, server, lab, gp);
      // Ten requests failed alike: one line for the reason within the interval, not one each (an outage would flood the log).
      t.is(lines.filter((line) => line.msg === 'request failed: a backend is unavailable').length, 1);
    },
    { logger },
  );
});

test('a Redis refusing writes because it cannot persist (a snapshot failing: MISCONF) is answered 503', async (t) => {
  await onOwnRedis(t, ['--save', '3600 1'], async ({ redis, server, lab, gp }) => {
    // Its folder gone, the snapshot fails, and Redis refuses writes (stop-writes-on-bgsave-error).
    await rm(redis.dir, { recursive: true, force: true });
    await redis.admin.bgsave();
    t.true(await waitFor(async () => /rdb_last_bgsave_status:err/.test(await redis.admin.info('persistence')), 10_000, 100));
    await bothRefused503(t, server, lab, gp);
  });
});

test('a restarted Redis still loading its data answers requests 503 at once, not after the load', async (t) => {
  await onOwnRedis(t, [], async ({ redis, server, lab, gp }) => {
    const messageId = await sendMessage(server, lab, gp, 'kept');
    // Enough data, loaded slowly (as a large AOF loads), that the load takes seconds.
    await redis.admin.eval("for i=1,30000 do redis.call('SET','filler:'..i,'v') end return 1", 0);
    await redis.admin.save();
    await redis.restart(['--save', '', '--key-load-delay', '100', '--loading-process-events-interval-bytes', '1024']);
    const probe = new Redis(redis.port, '127.0.0.1', { enableReadyCheck: false, maxRetriesPerRequest: 0 });
    t.teardown(() => probe.disconnect());
    const loading = async (): Promise<boolean> => /^LOADING/.test(await probe.get('x').then(String, (error: Error) => error.message));
    t.true(await loading(), 'Redis is loading');
    const download = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` });
    t.is(download.status, 503);
    t.true(await loading(), 'answered while Redis was still loading');
  });
});

test('a Redis that may evict keys under memory pressure (volatile-lru, a managed service default) is named at start as an error; noeviction is not', async (t) => {
  const evicting = capturedLogger();
  await onOwnRedis(t, ['--maxmemory-policy', 'volatile-lru'], async () => {}, { logger: evicting.logger });
  const said = evicting.lines.filter((line) => line.level === 50 && line.maxmemoryPolicy === 'volatile-lru');
  t.is(said.length, 1);
  t.regex(said[0]!.msg, /set maxmemory-policy noeviction/);

  const safe = capturedLogger();
  await onOwnRedis(t, [], async () => {}, { logger: safe.logger });
  t.false(safe.lines.some((line) => 'maxmemoryPolicy' in line));
});
