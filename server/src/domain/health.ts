import { sharedRead } from '../shared-read.ts';
import { within } from '../time-limit.ts';
import type { Services } from './services.ts';

export interface Readiness {
  readonly ready: boolean;
  readonly redis: boolean;
  readonly objectStorage: boolean;
}

/** How long each backend has to answer a readiness check. */
const READY_WITHIN_MS = 2_000;

/** Whether this process can serve: Redis and object storage both answer (quickly). */
export async function checkReadiness(services: Services): Promise<Readiness> {
  const [redis, objectStorage] = await Promise.all([
    within(services.messages.ping(), READY_WITHIN_MS).then(() => true, () => false),
    services.payloads.ping(READY_WITHIN_MS).then(() => true, () => false),
  ]);
  return { ready: redis && objectStorage, redis, objectStorage };
}

/**
 * How long a process found ready answers its probes so, unchecked: any certificate of the CA may
 * ask for readiness, as often as it likes, and each check costs a command to Redis and a request
 * to object storage (billed, and throttled, by some). A process found not ready is checked again
 * at the next probe.
 */
const READY_KEPT_MS = 1_000;

/**
 * checkReadiness for a process's probes: probes at once share one check, and a ready answer
 * stands for READY_KEPT_MS by the services' clock (a clock set back meanwhile ends it).
 */
export function readinessProbe(services: Services): () => Promise<Readiness> {
  return sharedRead(() => checkReadiness(services), READY_KEPT_MS, { now: () => services.now().getTime(), keeps: (readiness) => readiness.ready });
}
