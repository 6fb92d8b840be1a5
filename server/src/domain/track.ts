import { MeshErrorCodes } from '../../../shared/src/protocol/index.ts';
import { MeshError, MessageNotFoundError } from './errors.ts';
import { inboxExpiryOf } from './lifecycle.ts';
import type { MailboxProfile } from '../store/mailboxes.ts';
import type { MessageRecord, StoredChunkSize } from '../store/messages.ts';
import type { Services } from './services.ts';

export interface TrackedMessage {
  readonly message: MessageRecord;
  /** While uploading, the chunks the server holds (and their sizes), so an interrupted upload can resume. */
  readonly storedChunks: readonly StoredChunkSize[] | undefined;
  /** Its sender and recipient as registered (names, ODS codes); undefined for none (a report's sender) or one since removed. */
  readonly sender: MailboxProfile | undefined;
  readonly recipient: MailboxProfile | undefined;
  /** When it leaves the recipient's inbox unacknowledged: undefined until it is accepted. */
  readonly expiresAt: Date | undefined;
}

/** Tracking is for the sender only; anyone else is told the message does not exist. */
export async function trackMessage(services: Services, mailboxId: string, messageId: string): Promise<TrackedMessage> {
  const message = await services.messages.get(messageId);
  if (!message || message.sender !== mailboxId) throw new MessageNotFoundError(messageId);
  const [storedChunks, sender, recipient] = await Promise.all([
    message.status === 'uploading' ? services.messages.storedChunks(messageId) : undefined,
    message.sender ? services.mailboxes.profile(message.sender) : undefined,
    services.mailboxes.profile(message.recipient),
  ]);
  const expiresAt = message.acceptedAt && inboxExpiryOf(message, services.periods);
  return { message, storedChunks, sender, recipient, expiresAt };
}

/** How many of the messages sharing a local id a 300 names. */
const LISTED_MATCHES = 20;

/** Tracking by the sender's own local id, which must pick out exactly one message. */
export async function trackByLocalId(services: Services, mailboxId: string, localId: string): Promise<TrackedMessage> {
  const { count, ids } = await services.messages.findByLocalId(mailboxId, localId, LISTED_MATCHES);
  // The two are read one after the other: a send or a purge may come between.
  const matches = Math.max(count, ids.length);
  if (matches > 1) {
    // Which ones, so the sender can track each by its id (its own messages only: the index is per sender).
    const named = [...ids].sort().join(', ');
    const more = matches > ids.length ? ` and ${matches - ids.length} more` : '';
    throw new MeshError(300, MeshErrorCodes.multipleLocalIdMatches, { detail: `${localId} (messages ${named}${more})` });
  }
  const [messageId] = ids;
  if (messageId === undefined) throw new MessageNotFoundError(localId);
  return trackMessage(services, mailboxId, messageId);
}
