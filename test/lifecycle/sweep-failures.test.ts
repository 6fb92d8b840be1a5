import test from 'ava';
import { waitFor } from '../../scripts/services/processes.ts';
import { LIFECYCLE_QUEUE } from '../../server/src/jobs/queue-name.ts';
import { createServerLogger } from '../../server/src/logging.ts';
import { Metrics } from '../../server/src/metrics.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import { runDueLifecycles } from '../../server/src/jobs/lifecycle-worker.ts';
import { capturedLogger } from '../../server/test/support/captured-log.ts';
import { startTestServer } from '../support/harness.ts';
import { mailboxRequest, sendMessage } from '../support/http.ts';
import { LIFECYCLE_TEST_PERIODS, SECOND } from '../support/lifecycle-setting.ts';
import { overriding } from '../support/overriding.ts';

test('a sweep that fails as a whole (Redis refusing its claim) is counted in meshbox_job_failures_total, as a failed check is: an alert on failures sees the sweeps stopped', async (t) => {
  const server = await startTestServer({ worker: false });
  try {
    // A shard of the schedule that Redis refuses to read as one (WRONGTYPE): every sweep fails at it.
    await server.redis.set(redisKeys(server.redisPrefix).lifecycleSchedule(3), 'not a sorted set');
    const metrics = new Metrics({ name: LIFECYCLE_QUEUE, counts: () => server.connections.schedule.counts(new Date()) });
    await server.connections.startWorker(createServerLogger('silent'), metrics, { sweepEveryMs: 200 });
    const failures = async (): Promise<number> => (await metrics.jobFailures.get()).values.find((value) => value.labels.queue === LIFECYCLE_QUEUE)?.value ?? 0;
    t.true(await waitFor(async () => (await failures()) > 0, 30_000, 50), 'failed sweeps counted');
    t.is((await metrics.sweepCompleted.get()).values.length, 0, 'no sweep completed');
  } finally {
    await server.close();
  }
});

test('checks failing alike (object storage away for every purge) are logged a line per reason, not a line each: a national day has tens of thousands a sweep; each is recorded with its check all the same', async (t) => {
  const server = await startTestServer({ periods: LIFECYCLE_TEST_PERIODS, worker: false, limits: { inlinePayloadBytes: 0 } });
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    const sent: string[] = [];
    for (let i = 0; i < 10; i++) sent.push(await sendMessage(server, lab, gp, `result ${i}`));
    for (const messageId of sent) {
      t.is((await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` })).status, 200);
    }
    await server.settled();
    const { payloads } = server.services;
    const later = new Date(Date.now() + LIFECYCLE_TEST_PERIODS.payloadRetentionMs + SECOND);
    const services = {
      ...server.services,
      now: () => later,
      payloads: overriding(payloads, { deleteMessage: () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9000'), { code: 'ECONNREFUSED' })) }),
    };
    const { logger, lines } = capturedLogger();
    const checked = await runDueLifecycles(services, server.connections.schedule, logger);
    t.true(checked >= sent.length);
    const failed = lines.filter((line) => String(line.msg).startsWith('lifecycle check failed'));
    t.is(failed.length, 1, JSON.stringify(failed.map((line) => line.msg)));
    t.like(failed[0], { msg: 'lifecycle check failed; will retry', attempts: 1 });
    t.is((await server.connections.schedule.counts(later)).failing, sent.length, 'every failed check is recorded, to be retried');
  } finally {
    await server.close();
  }
});
