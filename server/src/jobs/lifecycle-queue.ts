import { DelayedError, type Job, Queue, Worker } from 'bullmq';
import type { RedisClient } from '../store/redis-client.ts';
import type { Logger } from 'pino';
import { advanceLifecycle, type LifecycleScheduler } from '../domain/lifecycle.ts';
import type { Services } from '../domain/services.ts';
import type { Metrics } from '../metrics.ts';

export const LIFECYCLE_QUEUE = 'message-lifecycle';

/**
 * BullMQ's key prefix: under the deployment's Redis prefix, so deployments sharing a Redis stay
 * apart, and one hash tag, as BullMQ's scripts touch several keys of a queue at once (Cluster).
 */
export function queuePrefix(redisPrefix: string): string {
  return `{${redisPrefix}queues}`;
}

interface LifecycleJob {
  readonly messageId: string;
}

const JOB_OPTIONS = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 1_000 },
  removeOnComplete: true,
  // Failed jobs stay visible (admin queues) until a later run succeeds or these many accumulate.
  removeOnFail: 10_000,
} as const;

/**
 * One delayed BullMQ job per message, id = message id. It wakes when the next step of the
 * message's life is due (abandon upload, expire, purge payload, purge record), does it and
 * sleeps again until the next.
 */
export class BullLifecycleScheduler implements LifecycleScheduler {
  readonly queue: Queue<LifecycleJob>;

  constructor(connection: RedisClient, prefix: string) {
    this.queue = new Queue<LifecycleJob>(LIFECYCLE_QUEUE, { connection, prefix });
  }

  /** A job for a message id never scheduled before (a freshly reserved one). */
  async start(messageId: string, at: Date): Promise<void> {
    await this.queue.add('lifecycle', { messageId }, { ...JOB_OPTIONS, jobId: messageId, delay: Math.max(0, at.getTime() - Date.now()) });
  }

  /** Makes sure the message is looked at no later than `at`. */
  async schedule(messageId: string, at: Date): Promise<void> {
    const delay = Math.max(0, at.getTime() - Date.now());
    const existing = await this.queue.getJob(messageId);
    if (existing && (await existing.isDelayed())) {
      await existing.changeDelay(delay);
      return;
    }
    // A job already waiting or running reads the message's state afresh when it runs.
    if (existing && !(await existing.isFailed()) && !(await existing.isCompleted())) return;
    if (existing) await existing.remove();
    await this.start(messageId, at);
  }

  /** Jobs per state, for metrics and `admin queues`. */
  async counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed');
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

/** Runs lifecycle jobs; any number of processes may run one (each job runs in one at a time). */
export interface WorkerTiming {
  /** How long a running job's lock lasts without renewal: a worker that died is noticed after it. */
  readonly lockDurationMs?: number;
  readonly stalledIntervalMs?: number;
}

export function startLifecycleWorker(
  services: Services,
  connection: RedisClient,
  prefix: string,
  logger: Logger,
  timing: WorkerTiming = {},
  metrics?: Metrics,
): Worker<LifecycleJob> {
  const worker = new Worker<LifecycleJob>(
    LIFECYCLE_QUEUE,
    async (job: Job<LifecycleJob>, token?: string) => {
      const started = performance.now();
      let next: Date | undefined;
      try {
        next = await advanceLifecycle(services, job.data.messageId);
      } catch (error) {
        metrics?.jobFailures.inc({ queue: LIFECYCLE_QUEUE });
        throw error;
      } finally {
        metrics?.jobDuration.observe({ queue: LIFECYCLE_QUEUE }, (performance.now() - started) / 1000);
      }
      if (next) {
        await job.moveToDelayed(next.getTime(), token);
        throw new DelayedError();
      }
    },
    {
      connection,
      prefix,
      concurrency: 16,
      ...(timing.lockDurationMs ? { lockDuration: timing.lockDurationMs } : {}),
      ...(timing.stalledIntervalMs ? { stalledInterval: timing.stalledIntervalMs } : {}),
    },
  );
  worker.on('failed', (job, error) => {
    logger.error({ err: error, messageId: job?.data.messageId, attempts: job?.attemptsMade }, 'lifecycle job failed');
  });
  worker.on('error', (error) => logger.error({ err: error }, 'lifecycle worker error'));
  return worker;
}
