import test from 'ava';
import { pino } from 'pino';
import { advanceLifecycle } from '../../server/src/domain/lifecycle.ts';
import { Queue } from 'bullmq';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureLocalServices } from '../../scripts/services/index.ts';
import { waitFor } from '../../scripts/services/processes.ts';
import { DEFAULT_PERIODS } from '../../server/src/config.ts';
import { queuePrefix, runDueLifecycles } from '../../server/src/jobs/lifecycle-worker.ts';
import { LIFECYCLE_QUEUE } from '../../server/src/jobs/queue-name.ts';
import { type Claim, SCHEDULE_SHARDS } from '../../server/src/store/lifecycle-schedule.ts';
import { startTestServer } from '../support/harness.ts';
import { mailboxRequest, sendMessage } from '../support/http.ts';
import { LIFECYCLE_TEST_PERIODS, SECOND } from '../support/lifecycle-setting.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';

test('a worker that dies mid-check (after its effect, before setting the next check) has the check retried once its lease ends, taking effect once', async (t) => {
  const inboxExpiryMs = 400;
  const leaseMs = 200; // shorter than the inbox expiry, so the report's own check is not due meanwhile
  const server = await startTestServer({ worker: false, periods: { uploadExpiryMs: 50, inboxExpiryMs } });
  const { schedule } = server.connections;
  const silent = pino({ level: 'silent' });
  /** Every REPORT record linked to a message, wherever it is now (reports expire too). */
  const reportsAbout = async (messageId: string): Promise<number> => {
    let reports = 0;
    for await (const keys of server.redis.scanStream({ match: `${server.redisPrefix}message:*`, count: 1000 })) {
      for (const key of keys as string[]) {
        const [type, linked] = await server.redis.hmget(key, 'type', 'linkedMessageId');
        if (type === 'REPORT' && linked === messageId) reports++;
      }
    }
    return reports;
  };
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    const messageId = await sendMessage(server, lab, gp, 'nobody collects this');
    // The workers' clock is the test's, from the message's acceptance: what is due when does not
    // depend on how busy the machine is (a slow send would otherwise find the expiry due at once).
    let clock = (await server.services.messages.get(messageId))!.acceptedAt!.getTime();
    const services = { ...server.services, now: () => new Date(clock) };
    const sweep = () => runDueLifecycles(services, schedule, silent, { leaseMs });

    // Delivered, its first check has moved on to when it could expire: nothing is due before.
    clock += 100;
    t.is(await sweep(), 0);
    clock += inboxExpiryMs;

    // The doomed worker claims the expiry check and carries it out (report sent), then dies.
    const claims: Claim[] = [];
    for (let shard = 0; shard < SCHEDULE_SHARDS; shard++) claims.push(...(await schedule.claimDue(shard, services.now(), leaseMs, 10)));
    t.deepEqual(claims.map((claim) => claim.messageId), [messageId], 'the expiry check was due');
    await advanceLifecycle(services, messageId);
    t.is(await reportsAbout(messageId), 1);

    clock += leaseMs - 1;
    t.is(await sweep(), 0, 'nobody else takes it while the lease lasts');
    t.like(await schedule.counts(services.now()), { due: 0, held: 1 }, 'held by the dead worker: seen, though not due');
    clock += 2;
    t.is(await sweep(), 1, 'after the lease it is taken again');
    t.like(await schedule.counts(services.now()), { held: 0 });

    const next = await schedule.nextCheck(messageId);
    t.true(next !== undefined && next.getTime() > clock + leaseMs, `moved on to its next step (${next?.toISOString()})`);
    const tracking = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` });
    t.is(tracking.json().status, 'undeliverable');
    t.is(await reportsAbout(messageId), 1, 'exactly one non-delivery report');
  } finally {
    await server.close();
  }
});

test('a check that outlasts its lease (object storage answering slowly) and fails late leaves the check to the worker that took it: nobody takes it a third time meanwhile, and it does not come back once that worker purged the message', async (t) => {
  const leaseMs = 60 * SECOND;
  const proxy = await startTcpProxy(Number(new URL((await ensureLocalServices()).s3.endpoint).port));
  const server = await startTestServer({
    s3Endpoint: `http://127.0.0.1:${proxy.port}`,
    periods: LIFECYCLE_TEST_PERIODS,
    limits: { inlinePayloadBytes: 0 },
    worker: false,
  });
  const { schedule } = server.connections;
  const silent = pino({ level: 'silent' });
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    const messageId = await sendMessage(server, lab, gp, 'collected, then purged');
    t.is((await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` })).status, 200);
    // Past both retentions: one check purges the payload, then the record.
    let clock = Date.now() + LIFECYCLE_TEST_PERIODS.messageRetentionMs + SECOND;
    const services = { ...server.services, now: () => new Date(clock) };
    const claimAll = async (): Promise<Claim[]> =>
      (await Promise.all(Array.from({ length: SCHEDULE_SHARDS }, (_, shard) => schedule.claimDue(shard, services.now(), leaseMs, 10)))).flat();

    // Worker A claims the check; its listing of the payload reaches the store, whose answer does not come.
    proxy.holdAnswers();
    const before = proxy.bytesToBackend();
    const slow = runDueLifecycles(services, schedule, silent, { leaseMs });
    t.true(await waitFor(async () => proxy.bytesToBackend() > before, 10_000, 20), 'A is purging the payload');

    // Its lease ends; worker B takes the check. Then A's calls fail (the store gone, its retries refused).
    clock += leaseMs;
    const [taken] = await claimAll();
    t.is(taken?.messageId, messageId);
    await proxy.cut();
    t.is(await slow, 1, 'A ran the check');
    t.is((await server.services.messages.get(messageId))?.payloadPurgedAt, undefined, 'and failed: its payload not purged');
    t.deepEqual(await schedule.failures(10), [], "A's failure is not recorded against B's check");

    t.like(await schedule.counts(new Date(clock + leaseMs - 1)), { due: 0, held: 1 }, "nobody takes the check while B's lease lasts");

    proxy.releaseAnswers();
    await proxy.restore();
    await schedule.release(taken!, await advanceLifecycle(services, messageId));
    t.is(await server.services.messages.get(messageId), undefined, 'purged by B');
    t.is(await schedule.nextCheck(messageId), undefined, "the message's life is over: no check comes back");
    t.like(await schedule.counts(services.now()), { scheduled: 0, held: 0, failing: 0 });
  } finally {
    await server.close();
    await proxy.close();
  }
});

test("sweeps whose job chain broke (BullMQ's next job never added: Redis refused the write) start again: each worker sets the schedulers anew", async (t) => {
  const server = await startTestServer({ worker: false, periods: { ...DEFAULT_PERIODS, inboxExpiryMs: 1_500, deliveryCheckMs: 5_000 } });
  const prefix = queuePrefix(server.redisPrefix);
  const queue = new Queue(LIFECYCLE_QUEUE, { connection: server.redis, prefix });
  try {
    await server.connections.startWorker(pino({ level: 'silent' }), undefined, { sweepEveryMs: 200, schedulersEveryMs: 3_000 });
    await sleep(1_000);
    // No next job anywhere: what a refused write leaves. A sweep running meanwhile adds its next
    // job as it ends, and the schedulers may be set anew meanwhile: taken out until none is left.
    const jobsLeft = async () => Object.values(await queue.getJobCounts('delayed', 'waiting', 'active')).reduce((sum, count) => sum + count, 0);
    const chainBroken = async (): Promise<boolean> => {
      await server.redis.del(`${prefix}:${LIFECYCLE_QUEUE}:delayed`, `${prefix}:${LIFECYCLE_QUEUE}:wait`);
      return (await jobsLeft()) === 0;
    };
    t.true(await waitFor(chainBroken, 10_000, 20), 'the chain is broken');
    const [sender, recipient] = [await server.createMailbox(), await server.createMailbox()];
    const messageId = await sendMessage(server, sender, recipient, 'never collected');
    const tracked = async () => (await mailboxRequest(server, sender, { path: `/messageexchange/${sender.id}/outbox/tracking?messageID=${messageId}` })).json().status;
    t.true(await waitFor(async () => (await tracked()) === 'undeliverable', 20_000, 200), 'expired by a sweep');
  } finally {
    await queue.close();
    await server.close();
  }
});
