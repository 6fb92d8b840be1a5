import { MeshClientError } from '../client/errors.ts';
import type { MeshClient, TrackingInfo } from '../client/mesh-client.ts';

/*
 * A send whose outcome is unknown (its answer lost, or a server failing after it may have
 * recorded it) is found again by its local id, through tracking: what dispatch does for a file
 * whose send was cut short, and `send --local-id` for a one-chunk message.
 */

/**
 * How long a one-chunk send whose answer never came may yet be recorded by the server: a
 * meshbox server's request timeout (15 minutes) and a minute. Sending it again sooner could
 * deliver it twice; tracking not knowing it before then does not say it did not go.
 */
export const IN_DOUBT_MS = 16 * 60_000;

/** Statuses of a message whose upload is complete: it went, whatever became of it since. */
export const SENT_STATUSES: ReadonlySet<string> = new Set(['accepted', 'acknowledged', 'undeliverable']);

/** The id of the message carrying a local id: null when none does, 'several' when more than one does. */
export async function messageCarrying(client: MeshClient, localId: string): Promise<string | 'several' | null> {
  try {
    return await client.messageIdForLocalId(localId);
  } catch (error) {
    if (error instanceof MeshClientError && error.status === 404) return null;
    if (error instanceof MeshClientError && error.status === 300) return 'several';
    throw error;
  }
}

/** Tracking of a message, undefined when the server knows none of that id. */
export async function trackIfKnown(client: MeshClient, messageId: string): Promise<TrackingInfo | undefined> {
  try {
    return await client.track(messageId);
  } catch (error) {
    if (error instanceof MeshClientError && error.status === 404) return undefined;
    throw error;
  }
}

/** A send carrying a local id, as it went. */
export interface SendByLocalId {
  readonly localId: string;
  /** The message that carried the local id before this send (messageCarrying, asked before it went): not this send's. */
  readonly earlier: string | 'several' | null;
  readonly to: string;
  readonly workflowId: string;
  readonly fileName: string;
}

/**
 * The message the send made, found by its local id: undefined when none is (yet), 'several' when
 * more than one message carries it, so that which is this send's cannot be told. The message
 * that carried it before the send is not this send's, nor is one sent to another recipient,
 * workflow or file name (a local id reused for another file meanwhile).
 */
export async function findSendByLocalId(client: MeshClient, send: SendByLocalId): Promise<TrackingInfo | 'several' | undefined> {
  const messageId = await messageCarrying(client, send.localId);
  if (messageId === 'several' || (messageId !== null && send.earlier === 'several')) return 'several';
  if (messageId === null || messageId === send.earlier) return undefined;
  const found = await trackIfKnown(client, messageId);
  const same =
    found !== undefined &&
    (found.recipient ?? '').toUpperCase() === send.to.toUpperCase() &&
    found.workflow_id === send.workflowId &&
    (found.filename ?? '') === send.fileName;
  return same ? found : undefined;
}
