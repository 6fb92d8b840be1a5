import test from 'ava';
import { Worker } from 'bullmq';
import { pino } from 'pino';
import { advanceLifecycle } from '../../server/src/domain/lifecycle.ts';
import { LIFECYCLE_QUEUE, queuePrefix, startLifecycleWorker } from '../../server/src/jobs/lifecycle-queue.ts';
import { startTestServer } from '../support/harness.ts';
import { mailboxRequest, sendMessage } from '../support/http.ts';

test('a worker that dies mid-job (after its effect, before finishing) has the job retried elsewhere, taking effect once', async (t) => {
  const server = await startTestServer({ worker: false, periods: { uploadExpiryMs: 50, inboxExpiryMs: 400 } });
  const connection = () => server.redis.duplicate({ maxRetriesPerRequest: null });
  const prefix = queuePrefix(server.redisPrefix);
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

    // The doomed worker expires the message (report sent), then never completes the job.
    let effects = 0;
    const doomed = new Worker(
      LIFECYCLE_QUEUE,
      async (job) => {
        await new Promise((resolve) => setTimeout(resolve, Math.max(0, 450 - (Date.now() - job.timestamp))));
        await advanceLifecycle(server.services, job.data.messageId);
        effects++;
        await new Promise(() => {});
      },
      { connection: connection(), prefix, lockDuration: 1_000, stalledInterval: 500 },
    );
    while (effects === 0) await new Promise((resolve) => setTimeout(resolve, 50));
    await doomed.close(true);
    await doomed.disconnect();

    const survivor = startLifecycleWorker(server.services, connection(), prefix, pino({ level: 'silent' }), {
      lockDurationMs: 1_000,
      stalledIntervalMs: 500,
    });
    try {
      let state = '';
      for (let attempt = 0; attempt < 100 && state !== 'delayed'; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        state = (await server.connections.scheduler.queue.getJob(messageId).then((job) => job?.getState())) ?? '';
      }
      t.is(state, 'delayed', 'the stalled job was picked up again and moved on to its next step');
      const tracking = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` });
      t.is(tracking.json().status, 'undeliverable');
      t.deepEqual(await reportsAbout(messageId), 1, 'exactly one non-delivery report');
    } finally {
      await survivor.close();
      await survivor.disconnect();
    }
  } finally {
    await server.close();
  }
});
