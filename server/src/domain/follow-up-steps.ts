/** A step after a message was recorded that failed (Redis away for a moment); the message stands. */
export interface UnfinishedStep {
  readonly step: 'delivery' | 'audit';
  readonly error: unknown;
}

/**
 * Runs what follows recording a message: its delivery into the inbox, its audit entry. Their
 * failures are returned, not thrown: the message is recorded, so the sender's 202 is the
 * truth, and an error answer would have the sender send it again (a duplicate). A delivery
 * left undone is made by the message's first lifecycle check; the caller logs each failure.
 */
export async function runFollowUpSteps(steps: Partial<Record<UnfinishedStep['step'], Promise<unknown>>>): Promise<readonly UnfinishedStep[]> {
  const names = Object.keys(steps) as UnfinishedStep['step'][];
  const settled = await Promise.allSettled(names.map((name) => steps[name]));
  return settled.flatMap((result, index) => (result.status === 'rejected' ? [{ step: names[index]!, error: result.reason as unknown }] : []));
}
