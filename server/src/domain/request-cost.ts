import { TooManyRequestsError } from './errors.ts';
import type { Services } from './services.ts';

/**
 * Counts a costly request against the per-second limit of `counter` (a mailbox, or the name of
 * a certificate asking a lookup) as `cost` requests, of which `alreadyCounted` were counted
 * when it was authenticated; refused (429) past the limit. At most the whole second's
 * allowance: alone in its second, even the costliest request is served.
 */
export async function countRequestCost(services: Services, counter: string, cost: number, alreadyCounted = 0): Promise<void> {
  const limit = services.maxRequestsPerSecond;
  if (limit <= 0) return;
  const more = Math.min(limit, cost) - alreadyCounted;
  if (more <= 0) return;
  if ((await services.rateLimits.countRequest(counter, services.now(), more)) > limit) throw new TooManyRequestsError(1);
}
