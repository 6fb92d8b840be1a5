import { within } from '../time-limit.ts';
import type { Services } from './services.ts';

export interface Readiness {
  readonly ready: boolean;
  readonly redis: boolean;
  readonly objectStorage: boolean;
}

/** Whether this process can serve: Redis and object storage both answer (quickly). */
export async function checkReadiness(services: Services): Promise<Readiness> {
  const [redis, objectStorage] = await Promise.all([
    within(services.messages.ping(), 2_000).then(() => true, () => false),
    within(services.payloads.ping(), 2_000).then(() => true, () => false),
  ]);
  return { ready: redis && objectStorage, redis, objectStorage };
}
