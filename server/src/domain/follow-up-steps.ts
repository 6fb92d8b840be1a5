/** A step after a message was recorded that failed (Redis away for a moment); the message stands. */
export interface UnfinishedStep {
  /** The recipient's inbox, the sender's local-id index, the audit trail, the deletion of a chunk's replaced copy, the message's next lifecycle check. */
  readonly step: 'delivery' | 'index' | 'audit' | 'cleanup' | 'schedule';
  readonly error: unknown;
}

/**
 * Runs what follows recording a message or a chunk: its delivery into the inbox, its local-id
 * index, its audit entry, the deletion of a chunk copy it replaced. Their failures are
 * returned, not thrown: the message is recorded, so the sender's 202 is the truth, and an
 * error answer would have the sender send it again (a duplicate). A delivery or index left
 * undone is made by the message's first lifecycle check, a copy left goes with the message's
 * payload; the caller logs each failure.
 */
export async function runFollowUpSteps(steps: Partial<Record<UnfinishedStep['step'], Promise<unknown>>>): Promise<readonly UnfinishedStep[]> {
  const names = Object.keys(steps) as UnfinishedStep['step'][];
  const settled = await Promise.allSettled(names.map((name) => steps[name]));
  return settled.flatMap((result, index) => (result.status === 'rejected' ? [{ step: names[index]!, error: result.reason as unknown }] : []));
}
