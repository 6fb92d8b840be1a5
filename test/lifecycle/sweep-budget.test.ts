import test from 'ava';
import { pino } from 'pino';
import type { Services } from '../../server/src/domain/services.ts';
import { runDueLifecycles } from '../../server/src/jobs/lifecycle-worker.ts';
import { type LifecycleSchedule, SCHEDULE_SHARDS } from '../../server/src/store/lifecycle-schedule.ts';

test.serial('a sweep looks at every shard once even when its first shards take past its time budget; only a backlog\'s later rounds are cut', async (t) => {
  const realNow = Date.now;
  let skew = 0;
  Date.now = () => realNow() + skew;
  try {
    const visited: number[] = [];
    // Each shard's claim takes (as on a loaded machine, or a slow S3) a minute of the clock; none has anything due.
    const schedule = {
      claimDue: async (shard: number) => {
        visited.push(shard);
        skew += 60_000;
        return [];
      },
    } as unknown as LifecycleSchedule;
    const services = { now: () => new Date(Date.now()) } as unknown as Services;
    t.is(await runDueLifecycles(services, schedule, pino({ level: 'silent' })), 0);
    t.deepEqual([...visited].sort((a, b) => a - b), Array.from({ length: SCHEDULE_SHARDS }, (_, shard) => shard), 'every shard, once');
  } finally {
    Date.now = realNow;
  }
});
