import test from 'ava';
import { waitFor } from '../../scripts/services/processes.ts';
import { LIFECYCLE_QUEUE } from '../../server/src/jobs/queue-name.ts';
import { createServerLogger } from '../../server/src/logging.ts';
import { Metrics } from '../../server/src/metrics.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import { startTestServer } from '../support/harness.ts';

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
