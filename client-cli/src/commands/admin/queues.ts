import type { Command } from 'commander';
import { Queue } from 'bullmq';
import { resolveBackends } from '../../../../server/src/backends.ts';
import { loadBackendConfig } from '../../../../server/src/config.ts';
import { LIFECYCLE_QUEUE, queuePrefix } from '../../../../server/src/jobs/lifecycle-queue.ts';
import { openRedis } from '../../../../server/src/store/redis-client.ts';

const STATES = ['waiting', 'active', 'delayed', 'completed', 'failed'] as const;

interface QueueReport {
  readonly queue: string;
  readonly counts: Record<string, number>;
  readonly failed: { readonly messageId: string; readonly attempts: number; readonly reason: string; readonly failedAt: string | null }[];
}

/** `admin queues`: job counts per queue and state, and the failed jobs with their reasons. */
export function registerQueueCommands(admin: Command): void {
  admin
    .command('queues')
    .description('job counts per queue and state, and failed jobs with their reasons')
    .option('--failed <n>', 'how many failed jobs to show', '20')
    .option('--json', 'print JSON')
    .action(async (options: { failed: string; json?: boolean }) => {
      const config = await resolveBackends(loadBackendConfig());
      const connection = openRedis(config, { maxRetriesPerRequest: null });
      const queue = new Queue(LIFECYCLE_QUEUE, { connection, prefix: queuePrefix(config.redisPrefix) });
      try {
        const counts = await queue.getJobCounts(...STATES);
        const failedJobs = await queue.getFailed(0, Math.max(0, Number(options.failed) - 1));
        const report: QueueReport = {
          queue: LIFECYCLE_QUEUE,
          counts,
          failed: failedJobs.map((job) => ({
            messageId: String((job.data as { messageId?: string }).messageId ?? job.id),
            attempts: job.attemptsMade,
            reason: job.failedReason,
            failedAt: job.finishedOn ? new Date(job.finishedOn).toISOString() : null,
          })),
        };
        if (options.json) {
          console.log(JSON.stringify([report], null, 2));
          return;
        }
        console.log(`${report.queue}: ${STATES.map((state) => `${state} ${counts[state] ?? 0}`).join(', ')}`);
        for (const failure of report.failed) {
          console.log(`  failed ${failure.messageId} after ${failure.attempts} attempts at ${failure.failedAt}: ${failure.reason}`);
        }
      } finally {
        await queue.close();
        connection.disconnect();
      }
    });
}
