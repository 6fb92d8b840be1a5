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
