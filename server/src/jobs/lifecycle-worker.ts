import { Queue, Worker } from 'bullmq';
import type { Logger } from 'pino';
import { DEFAULT_LIFECYCLE_LEASE_MS } from '../config.ts';
import { advanceLifecycle } from '../domain/lifecycle.ts';
import type { Services } from '../domain/services.ts';
import type { Metrics } from '../metrics.ts';
import { type Claim, type LifecycleSchedule, SCHEDULE_SHARDS } from '../store/lifecycle-schedule.ts';
import type { RedisClient } from '../store/redis-client.ts';
import { LIFECYCLE_QUEUE } from './queue-name.ts';
import { failureReason, type QuietLog, quietRepeats } from '../quiet-repeats.ts';

/**
 * BullMQ's key prefix: under the deployment's Redis prefix, so deployments sharing a Redis stay
 * apart, and one hash tag, as BullMQ's scripts touch several keys of a queue at once (Cluster).
 */
export function queuePrefix(redisPrefix: string): string {
  return `{${redisPrefix}queues}`;
}

export interface WorkerTiming {
  /** How often a sweep looks for due lifecycle checks. */
  readonly sweepEveryMs?: number;
  /** How long a claimed check is held before another worker may take it (a worker that died). */
  readonly leaseMs?: number;
  /** How often each worker sets the job schedulers again (see startLifecycleWorker). */
  readonly schedulersEveryMs?: number;
}

const DEFAULT_SWEEP_EVERY_MS = 1_000;
const AUDIT_TRIM_EVERY_MS = 60_000;
const DEFAULT_SCHEDULERS_EVERY_MS = 60_000;
/** Checks run at once by one sweep: each may delete many objects from S3. */
const BATCH = 32;
/**
 * A sweep with a backlog hands over to the next after a round that ends past this, so a backlog
 * does not hold one job for ever. The first round always runs whole: a sweep that stopped
 * part-way on a slow machine would leave the last shards' due checks for a later sweep.
 */
const SWEEP_BUDGET_MS = 10_000;
const MAX_BACKOFF_MS = 60 * 60_000;

function retryBackoffMs(attempts: number): number {
  return Math.min(1_000 * 2 ** (attempts - 1), MAX_BACKOFF_MS);
}

/**
 * Runs every lifecycle check that is due: claims a batch from each schedule shard, carries out
 * each message's due steps and sets its next check. A failed check is retried with a growing
 * backoff, never dropped: a message's expiry or purge must happen eventually.
 */
export async function runDueLifecycles(
  services: Services,
  schedule: LifecycleSchedule,
  logger: Logger,
  options: { readonly leaseMs?: number; readonly metrics?: Metrics | undefined; readonly failureLog?: QuietLog } = {},
): Promise<number> {
  const started = Date.now();
  const failureLog = options.failureLog ?? quietRepeats(CHECK_FAILURE_LOG_INTERVAL_MS);
  let checked = 0;
  // One batch per shard in turn, from a random one: a backlog in some shards never starves the
  // others, and workers sweeping at once start in different places.
  const first = Math.floor(Math.random() * SCHEDULE_SHARDS);
  for (let backlog = true; backlog; ) {
    backlog = false;
    for (let i = 0; i < SCHEDULE_SHARDS; i++) {
      const claims = await schedule.claimDue((first + i) % SCHEDULE_SHARDS, services.now(), options.leaseMs ?? DEFAULT_LIFECYCLE_LEASE_MS, BATCH);
      await Promise.all(claims.map((claim) => runClaim(services, schedule, claim, { logger, failureLog, metrics: options.metrics })));
      checked += claims.length;
      if (claims.length === BATCH) backlog = true;
    }
    if (Date.now() - started > SWEEP_BUDGET_MS) return checked;
  }
  return checked;
}

/**
 * How often a reason for failed checks is logged at most: once, then how many more failed for it.
 * Object storage away fails every purge alike, tens of thousands a sweep on a national day.
 */
const CHECK_FAILURE_LOG_INTERVAL_MS = 10_000;

async function runClaim(
  services: Services,
  schedule: LifecycleSchedule,
  claim: Claim,
  report: { readonly logger: Logger; readonly failureLog: QuietLog; readonly metrics: Metrics | undefined },
): Promise<void> {
  const { logger, failureLog, metrics } = report;
  const started = performance.now();
  try {
    const next = await advanceLifecycle(services, claim.messageId);
    await schedule.release(claim, next);
  } catch (error) {
    metrics?.jobFailures.inc({ queue: LIFECYCLE_QUEUE });
    // Recorded with the check, whose failures `admin queues` lists.
    const recorded = error instanceof Error ? error.message : String(error);
    // Redis away too: the lease ends and the check comes due again by itself.
    const attempts = await schedule.releaseFailed(claim, recorded, services.now(), retryBackoffMs).then((failure) => failure.attempts, () => undefined);
    const reason = failureReason(error);
    failureLog(
      reason,
      () =>
        attempts === undefined
          ? logger.error({ err: error, messageId: claim.messageId }, 'lifecycle check failed; retried when its lease ends')
          : logger.error({ err: error, messageId: claim.messageId, attempts }, 'lifecycle check failed; will retry'),
      (repeats) => logger.error({ reason, repeats, seconds: CHECK_FAILURE_LOG_INTERVAL_MS / 1000 }, `lifecycle check failed ${repeats} more times for this reason`),
    );
  } finally {
    metrics?.jobDuration.observe({ queue: LIFECYCLE_QUEUE }, (performance.now() - started) / 1000);
  }
}

/**
 * Deletes audit entries past the audit retention (none when it is 0: kept for ever), a bounded
 * number a run (AuditLog.trimBefore): a backlog goes over the next runs. Returns how many went.
 */
export async function trimAuditLog(services: Services, logger: Logger): Promise<number> {
  if (services.periods.auditRetentionMs === 0) return 0;
  const { removed, backlog } = await services.audit.trimBefore(new Date(services.now().getTime() - services.periods.auditRetentionMs));
  if (backlog) logger.info({ removed }, 'audit entries past their retention deleted; more are left for the next trims');
  else if (removed > 0) logger.info({ removed }, 'audit entries past their retention deleted');
  return removed;
}

export interface LifecycleWorker {
  readonly close: () => Promise<void>;
}

/** How often a repeating worker error is logged: once, then how many more came in each interval. */
const WORKER_ERROR_LOG_INTERVAL_MS = 10_000;

/**
 * Logs the worker's errors, a line per reason (failureReason: a Cluster's MOVED for each slot is
 * one) at most once an interval: BullMQ asks again at once, and a Redis refusing every write is
 * refused thousands of times a second.
 */
export function workerErrorReporter(logger: Logger, intervalMs = WORKER_ERROR_LOG_INTERVAL_MS): (error: Error) => void {
  const log = quietRepeats(intervalMs);
  return (error) => {
    const reason = failureReason(error);
    log(
      reason,
      () => logger.error({ err: error }, 'lifecycle worker error'),
      (repeats) => logger.error({ reason, repeats, seconds: intervalMs / 1000 }, `lifecycle worker error ${repeats} more times for this reason`),
    );
  };
}

/**
 * Runs lifecycle sweeps as BullMQ jobs: a job scheduler adds one every sweep interval, and any
 * number of worker processes take them (claims keep two sweeps from running one check at once).
 * Another trims the audit log once a minute. BullMQ adds a scheduler's next job as a worker takes
 * the current one; should Redis refuse that write (out of memory, a failover's read-only moment)
 * past its retries, the chain ends, and sweeps (expiries, reports, purges) stop until a process
 * starts. So each worker sets the schedulers again every minute: an upsert leaves a pending next
 * job as it is, and adds one where there is none.
 */
export async function startLifecycleWorker(
  services: Services,
  schedule: LifecycleSchedule,
  connection: RedisClient,
  prefix: string,
  logger: Logger,
  timing: WorkerTiming = {},
  metrics?: Metrics,
): Promise<LifecycleWorker> {
  const queue = new Queue(LIFECYCLE_QUEUE, { connection, prefix });
  queue.on('error', (error) => logger.error({ err: error }, 'lifecycle queue error'));
  const jobOptions = { removeOnComplete: true, removeOnFail: 100 };
  const setSchedulers = async (): Promise<void> => {
    await queue.upsertJobScheduler('sweep', { every: timing.sweepEveryMs ?? DEFAULT_SWEEP_EVERY_MS }, { name: 'sweep', opts: jobOptions });
    await queue.upsertJobScheduler('trim-audit', { every: AUDIT_TRIM_EVERY_MS }, { name: 'trim-audit', opts: jobOptions });
  };
  await setSchedulers();
  // Across sweeps: an outage fails the checks of sweep after sweep alike.
  const checkFailures = quietRepeats(CHECK_FAILURE_LOG_INTERVAL_MS);
  const worker = new Worker(
    LIFECYCLE_QUEUE,
    (job) =>
      job.name === 'trim-audit'
        ? trimAuditLog(services, logger)
        : runDueLifecycles(services, schedule, logger, { leaseMs: timing.leaseMs, metrics, failureLog: checkFailures }).then((checked) => {
            metrics?.sweepCompleted.set({ queue: LIFECYCLE_QUEUE }, Date.now() / 1000);
            return checked;
          }),
    { connection, prefix, concurrency: 1 },
  );
  worker.on('failed', (job, error) => {
    // A sweep or trim that failed as a whole (a message's own check that fails is counted in runClaim): no check ran, and an alert on failures must see it.
    metrics?.jobFailures.inc({ queue: LIFECYCLE_QUEUE });
    logger.error({ err: error, job: job?.name }, 'lifecycle worker job failed');
  });
  const reportError = workerErrorReporter(logger);
  worker.on('error', reportError);
  let renewal = Promise.resolve();
  const renewing = setInterval(() => {
    renewal = setSchedulers().catch(reportError);
  }, timing.schedulersEveryMs ?? DEFAULT_SCHEDULERS_EVERY_MS);
  return {
    close: async () => {
      clearInterval(renewing);
      await renewal;
      // A running sweep finishes its batch first.
      await worker.close();
      await queue.close();
    },
  };
}
