import { MeshErrorCodes } from '../../../shared/src/protocol/index.ts';
import { atMost, MAX_DESCRIPTION, MeshClientError, oneLine } from '../client/errors.ts';
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

/**
 * What became of a message, by its tracking status (MESH's v2 tracking, as its specification
 * and sandbox give them, lower case; v1's title case read alike):
 * - `sent`: accepted (in the recipient's inbox) or acknowledged (collected);
 * - `uploading`: a message of several chunks not all stored yet;
 * - `discarded`: an upload meshbox gave up on before it was complete (status `error` with the
 *   status detail MeshErrorCodes.uploadDiscarded, and never accepted): nobody got it;
 * - `failed`: undeliverable (not collected in time, the recipient's mailbox deactivated, or its payload lost), or
 *   `error` otherwise (MESH's for a message that failed after it was sent): it went, and will
 *   not be delivered now;
 * - `unknown`: a status not among these, of which nothing can be told.
 */
export type SendOutcome = 'sent' | 'uploading' | 'discarded' | 'failed' | 'unknown';

export function sendOutcome(tracking: TrackingInfo): SendOutcome {
  const status = tracking.status.toLowerCase();
  if (status === 'accepted' || status === 'acknowledged') return 'sent';
  if (status === 'uploading') return 'uploading';
  if (status === 'undeliverable') return 'failed';
  if (status !== 'error') return 'unknown';
  // meshbox's discard is code 14 with event TRANSFER; MESH's sandbox gives its code 14 (an undelivered
  // message) event SEND (constants.py), and reports such a message undeliverable, not error. Should a
  // MESH `error` carry 14 and TRANSFER all the same, it is not taken for a discard: MESH's tracking
  // has no accepted_timestamp (undefined), which meshbox's leaves null for a message never complete.
  const { code, event } = MeshErrorCodes.uploadDiscarded;
  const discarded = tracking.accepted_timestamp === null && tracking.status_code === code && tracking.status_event === event;
  return discarded ? 'discarded' : 'failed';
}

/** A tracked message's status as a person reads it, `error (code 14, TRANSFER: Upload not ...)`: the server's text on one line, cut short. */
export function trackedStatus(tracking: TrackingInfo): string {
  const said = (value: unknown): string | undefined => (typeof value === 'string' && value.trim() !== '' ? oneLine(value) : undefined);
  const code = said(tracking.status_code);
  const where = [code && `code ${code}`, said(tracking.status_event)].filter(Boolean).join(', ');
  const why = [where, said(tracking.status_description)].filter(Boolean).join(': ');
  return atMost(MAX_DESCRIPTION, why === '' ? oneLine(tracking.status) : `${oneLine(tracking.status)} (${why})`);
}

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
