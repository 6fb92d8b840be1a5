import test from 'ava';
import { pino } from 'pino';
import { advanceLifecycle } from '../../server/src/domain/lifecycle.ts';
import { runDueLifecycles } from '../../server/src/jobs/lifecycle-worker.ts';
import { type Claim, SCHEDULE_SHARDS } from '../../server/src/store/lifecycle-schedule.ts';
import { startTestServer } from '../support/harness.ts';
import { mailboxRequest, sendMessage } from '../support/http.ts';

test('a worker that dies mid-check (after its effect, before setting the next check) has the check retried once its lease ends, taking effect once', async (t) => {
  const inboxExpiryMs = 400;
  const leaseMs = 1_000;
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
    const dueAt = Date.now() + inboxExpiryMs + 100;
    // Its first check (at the upload expiry) finds it accepted and sets the expiry check.
    await new Promise((resolve) => setTimeout(resolve, 100));
    t.is(await runDueLifecycles(server.services, schedule, silent, { leaseMs }), 1);
    await new Promise((resolve) => setTimeout(resolve, dueAt - Date.now()));

    // The doomed worker claims the expiry check and carries it out (report sent), then dies.
    const claims: Claim[] = [];
    for (let shard = 0; shard < SCHEDULE_SHARDS; shard++) claims.push(...(await schedule.claimDue(shard, new Date(), leaseMs, 10)));
    const doomed = claims.filter((claim) => claim.messageId === messageId);
    t.is(doomed.length, 1, 'the expiry check was due');
    await advanceLifecycle(server.services, messageId);
    t.is(await reportsAbout(messageId), 1);

    t.is(await runDueLifecycles(server.services, schedule, silent, { leaseMs }), 0, 'nobody else takes it while the lease lasts');
    await new Promise((resolve) => setTimeout(resolve, leaseMs + 50));
    t.true((await runDueLifecycles(server.services, schedule, silent, { leaseMs })) >= 1, 'after the lease it is taken again');

    const next = await schedule.nextCheck(messageId);
    t.true(next !== undefined && next.getTime() > Date.now() + leaseMs, `moved on to its next step (${next?.toISOString()})`);
    const tracking = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` });
    t.is(tracking.json().status, 'undeliverable');
    t.is(await reportsAbout(messageId), 1, 'exactly one non-delivery report');
  } finally {
    await server.close();
  }
});
