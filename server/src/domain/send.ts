import type { Readable } from 'node:stream';
import { MeshErrorCodes } from '../../../shared/src/protocol/index.ts';
import { type Mailbox, workflowAllowed } from '../store/mailboxes.ts';
import type { MessageMetadata } from '../store/messages.ts';
import { fitsInline, readSmallBody, storeChunk } from './chunk-storage.ts';
import { SendRejectedError } from './errors.ts';
import { releaseMessageId, reserveMessageId } from './message-ids.ts';
import type { Services } from './services.ts';

export interface ChunkBody {
  readonly stream: Readable;
  /** Undefined when the client streams without a Content-Length (gzip uploads). */
  readonly contentLength: number | undefined;
  readonly contentEncoding: string;
}

export type OutgoingMetadata = Omit<MessageMetadata, 'type' | 'sender' | 'linkedMessageId' | 'contentEncoding'>;

export interface SendRequest {
  readonly sender: Mailbox;
  readonly metadata: OutgoingMetadata;
  readonly body: ChunkBody;
}

/**
 * Sends a message (its chunk 1 of N). The chunk goes to object storage first and the
 * message is recorded after, so a 202 is only ever given for what is durable in both. A small
 * single-chunk message is stored in Redis with its record instead, in one atomic step: one S3
 * round trip per message would cap small-message throughput at what the object store allows.
 */
export async function sendMessage(services: Services, request: SendRequest): Promise<string> {
  if (request.metadata.totalChunks > services.limits.maxChunks) {
    throw new SendRejectedError(MeshErrorCodes.invalidHeaderChunks, {
      detail: `at most ${services.limits.maxChunks} chunks per message`,
    });
  }
  // The recipient is read while an id is reserved: a round trip fewer on every send; a refused
  // send gives its id back.
  const [recipient, messageId] = await Promise.all([
    services.mailboxes.get(request.metadata.recipient),
    // First looked at when the upload could be overdue, or the message (if accepted at once) could expire.
    reserveMessageId(services, new Date(services.now().getTime() + Math.min(services.periods.uploadExpiryMs, services.periods.inboxExpiryMs))),
  ]);
  const refusal = refusalOf(request, recipient);
  if (refusal) {
    await releaseMessageId(services, messageId);
    throw refusal;
  }
  const inline = fitsInline(services, request.metadata.totalChunks, request.body) ? await readSmallBody(request.body) : undefined;
  const size = inline ? inline.length : await storeChunk(services, messageId, 1, request.body);
  const metadata: MessageMetadata = {
    ...request.metadata,
    type: 'DATA',
    sender: request.sender.id,
    linkedMessageId: '',
    contentEncoding: request.body.contentEncoding,
  };
  const outcome = await services.messages.create(messageId, metadata, size, services.now(), inline);
  if (outcome === 'exists') throw new Error(`message id ${messageId} was reserved but already recorded`);
  await Promise.all([
    outcome === 'accepted' ? services.messages.deliver(messageId, metadata.recipient) : undefined,
    services.audit.record({ action: 'send', actor: request.sender.id, messageId, detail: `to ${metadata.recipient}` }),
  ]);
  return messageId;
}

function refusalOf(request: SendRequest, recipient: Mailbox | undefined): SendRejectedError | undefined {
  if (!recipient || !recipient.active) {
    return new SendRejectedError(MeshErrorCodes.unregisteredRecipient, { detail: request.metadata.recipient });
  }
  const { workflowId } = request.metadata;
  if (!workflowAllowed(request.sender.sendWorkflows, workflowId) || !workflowAllowed(recipient.receiveWorkflows, workflowId)) {
    return new SendRejectedError(MeshErrorCodes.workflowNotRegistered, { detail: workflowId });
  }
  return undefined;
}
