import { sharedRead } from '../shared-read.ts';
import { within } from '../time-limit.ts';
import type { ObjectStorageState } from '../store/payloads.ts';
import type { Services } from './services.ts';

export interface Readiness {
  readonly ready: boolean;
  readonly redis: boolean;
  readonly objectStorage: ObjectStorageState;
}

/** How long each backend has to answer a readiness check. */
const READY_WITHIN_MS = 2_000;

/**
 * Object storage states a process may serve in. Throttled is one: every process shares the one
 * bucket, so a store shedding load would fail them all at once, and a load balancer or an
 * orchestrator would take every one out, making a slowdown an outage. The SDK's retries carry
 * requests through it, and what still fails is answered 503 for the client to retry.
 */
const SERVING_STATES: ReadonlySet<ObjectStorageState> = new Set(['ok', 'throttled']);

/**
 * Whether this process can serve: Redis answers (quickly), and object storage answers for the
 * bucket, throttling or not. Not when it answers nothing, nor with another error: a bucket gone
 * (NoSuchBucket) or credentials refused (AccessDenied, InvalidAccessKeyId) fail every request
 * that needs it until an operator acts, and may be of this process alone (its credentials).
 */
export async function checkReadiness(services: Services): Promise<Readiness> {
  const [redis, objectStorage] = await Promise.all([
    within(services.messages.ping(), READY_WITHIN_MS).then(() => true, () => false),
    services.payloads.ping(READY_WITHIN_MS),
  ]);
  return { ready: redis && SERVING_STATES.has(objectStorage), redis, objectStorage };
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
