import type { Readable } from 'node:stream';
import { MeshErrorCodes } from '../../../shared/src/protocol/index.ts';
import { type Mailbox, workflowAllowed } from '../store/mailboxes.ts';
import type { CreateOutcome, MessageMetadata } from '../store/messages.ts';
import { admitChunkUpload, fitsInline, readSmallBody, SENT_CHUNK_VERSION, storeAdmittedChunk } from './chunk-storage.ts';
import { ForbiddenError, SendRejectedError, ServiceUnavailableError } from './errors.ts';
import { runFollowUpSteps, type UnfinishedStep } from './follow-up-steps.ts';
import { acceptedNextCheck } from './lifecycle.ts';
import { reserveMessageId } from './message-ids.ts';
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
  /** The id picked for the message beforehand (see resentMessage); another if a message holds it. */
  readonly messageId?: string;
}

/**
 * Sends a message (its chunk 1 of N). The chunk goes to object storage first and the
 * message is recorded after, so a 202 is only ever given for what is durable in both (and,
 * once it is, always: see runFollowUpSteps). A small
 * single-chunk message is stored in Redis with its record instead, in one atomic step: one S3
 * round trip per message would cap small-message throughput at what the object store allows.
 * A send refused for its recipient or workflow writes nothing. Once the message is recorded
 * the send is answered; its follow-up steps are under way by then (see SentMessage).
 */
export async function sendMessage(services: Services, request: SendRequest): Promise<SentMessage> {
  if (request.metadata.totalChunks > services.limits.maxChunks) {
    throw new SendRejectedError(MeshErrorCodes.invalidHeaderChunks, {
      detail: `at most ${services.limits.maxChunks} chunks per message`,
    });
  }
  const refusal = refusalOf(request, await services.mailboxes.get(request.metadata.recipient));
  if (refusal) throw refusal;
  const metadata: MessageMetadata = {
    ...request.metadata,
    type: 'DATA',
    sender: request.sender.id,
    linkedMessageId: '',
    contentEncoding: request.body.contentEncoding,
  };
  const recorded = fitsInline(services, metadata.totalChunks, request.body)
    ? await recordSmallMessage(services, metadata, request.body, request.messageId)
    : await recordStoredMessage(services, metadata, request.body, request.messageId);
  return { messageId: recorded.messageId, followUp: followUp(services, metadata, recorded) };
}

/**
 * Into the inbox, the local-id index and the audit trail, at once; then, if the first two are
 * done, the first check moved on. The commands of the first three are issued to the Redis
 * client, in order, before this returns, so before the send's answer: a request that comes
 * after the answer to the same process has its commands run after them (a poll lists the message).
 */
async function followUp(services: Services, metadata: MessageMetadata, recorded: Recorded): Promise<readonly UnfinishedStep[]> {
  const { messageId, outcome, recordedAt, firstCheckAt } = recorded;
  const unfinished = await runFollowUpSteps({
    index: services.messages.indexLocalId(messageId, metadata),
    ...(outcome === 'accepted' ? { delivery: deliverNew(services, messageId, metadata, firstCheckAt) } : {}),
    audit: services.audit.record({ action: 'send', actor: metadata.sender, messageId, detail: `to ${metadata.recipient}` }),
  });
  // The first check is still needed while the delivery or the index is left to it.
  if (outcome !== 'accepted' || unfinished.some(({ step }) => step === 'delivery' || step === 'index')) return unfinished;
  const moved = await runFollowUpSteps({ schedule: moveFirstCheckOn(services, messageId, metadata.recipient, { firstCheckAt, acceptedAt: recordedAt }) });
  return [...unfinished, ...moved];
}

/**
 * The identical retry of a send (same token and headers, see authenticateMailbox) whose first
 * try was to create `messageId`: the client lost the answer, and is told the message that went
 * rather than send it twice. While the first try is still storing the message the retry is
 * answered 503, which clients retry (a first try that fails gives its token back, and the next
 * retry sends the message). Should that try's id have clashed with another message's, its
 * message went under another id, and the other message, of another sender, refuses the retry.
 * A small message's bytes are compared too (they are at hand, in Redis): a token reused for
 * other content with the same headers is refused like any reused token, not told the first.
 */
export async function resentMessage(services: Services, sender: string, messageId: string, body: ChunkBody): Promise<string> {
  const message = await services.messages.get(messageId);
  if (message === undefined) throw new ServiceUnavailableError('the first try of this send is still being stored; ask again', 1);
  if (message.sender !== sender) throw new ForbiddenError();
  if (message.inlinePayload) {
    const { inlinePayload } = await services.messages.chunkSource(messageId, 1);
    if (inlinePayload !== undefined && !(await readSmallBodyInSlot(services, sender, body)).equals(inlinePayload)) throw new ForbiddenError();
  }
  return messageId;
}

/** Whether a send's message is recorded (its first try may have failed after recording it), as the primary holds it. */
export async function sendRecorded(services: Services, sender: string, messageId: string): Promise<boolean> {
  return (await services.messages.senderOnPrimary(messageId)) === sender;
}

export interface SentMessage {
  readonly messageId: string;
  /**
   * The steps that follow the record (the inbox, the local-id index, the audit entry, the first
   * check moved on), under way as the send is answered (the first three issued to the Redis
   * client, in order, before this is returned); resolves with those that failed (it never rejects): the message is sent all the same, and its first check makes up for a
   * delivery or an index left undone. The answer does not wait for them: it would not change
   * (an error answer would have the sender send the message again), and each round trip to
   * Redis a small send waits for cost the server 7–8% of its CPU per send, measured.
   */
  readonly followUp: Promise<readonly UnfinishedStep[]>;
}

interface Recorded {
  readonly messageId: string;
  readonly outcome: Exclude<CreateOutcome, 'exists'>;
  readonly recordedAt: Date;
  /** When its lifecycle is first looked at (there in case this request stops short of delivering it). */
  readonly firstCheckAt: Date;
}

async function deliverNew(services: Services, messageId: string, metadata: Pick<MessageMetadata, 'sender' | 'recipient'>, firstCheckAt: Date): Promise<void> {
  const { sender, recipient } = metadata;
  await services.messages.deliver(messageId, recipient);
  // Delivered so late that the first check may have delivered it before, and the recipient
  // acknowledged it since; or a mailbox sending to itself, which knows the id from the 202 and
  // may have acknowledged it through another API process before this landed: this delivery
  // must not list it again.
  if (firstCheckMayHaveCome(services, firstCheckAt) || sender === recipient) await services.messages.leaveInboxUnlessAccepted(messageId, recipient);
}

/**
 * Once the message is delivered and its local id indexed, the first check (there in case the
 * request stopped short of either, and makes up for it) can wait until the message could
 * expire, unless something else has moved it meanwhile (an acknowledgement, a worker's claim).
 */
async function moveFirstCheckOn(services: Services, messageId: string, recipient: string, steps: { readonly firstCheckAt: Date; readonly acceptedAt: Date }): Promise<void> {
  const { acceptedAt } = steps;
  await services.lifecycle.postpone(messageId, steps.firstCheckAt, acceptedNextCheck({ acceptedAt, createdAt: acceptedAt }, acceptedAt, services.periods));
  await returnIfRecipientDeactivated(services, messageId, recipient);
}

/**
 * A recipient deactivated while the send (or the upload of its last chunk) went on (`admin
 * mailbox disable`): the command's scan of the inbox may have come before this delivery, and
 * the message's next check would return it only much later. Read through the mailbox cache, so
 * it costs a send nothing: the command scans the inbox again once the cache time has passed.
 */
export async function returnIfRecipientDeactivated(services: Services, messageId: string, recipient: string): Promise<void> {
  const mailbox = await services.mailboxes.get(recipient).catch(() => undefined);
  if (mailbox?.active === false) await services.lifecycle.schedule(messageId, services.now());
}

/**
 * Whether a send has taken so long that its message's first lifecycle check may have come
 * already (workers may run on other machines, so their clocks are allowed minutes ahead: the
 * delay to that check is at least twice that allowance, so half of it covers it; config.ts). A
 * send normally ends long before; only a stalled one (Redis away, a dead connection whose
 * commands ioredis sends again once it reconnects) must allow for what that check did.
 */
function firstCheckMayHaveCome(services: Services, firstCheckAt: Date): boolean {
  return services.now().getTime() >= firstCheckAt.getTime() - services.periods.deliveryCheckMs / 2;
}

/**
 * Chunk 1 into object storage under a reserved id, then the record. Its first check may come
 * while the request still runs (the reservation keeps it waiting): once the request has surely
 * ended, or earlier when the upload could be overdue or the message could expire.
 */
async function recordStoredMessage(services: Services, metadata: MessageMetadata, body: ChunkBody, firstChoice: string | undefined): Promise<Recorded> {
  const { periods } = services;
  // Refused at once (too large, no transfer slot free) before an id is reserved and checked for a day.
  const release = admitChunkUpload(services, metadata.sender, body, undefined);
  try {
    const firstCheckAt = after(services, Math.min(periods.deliveryCheckMs, periods.uploadExpiryMs, periods.inboxExpiryMs));
    const { messageId, reservation } = await reserveMessageId(services, firstCheckAt, firstChoice);
    const size = await storeAdmittedChunk(services, { messageId, number: 1, version: SENT_CHUNK_VERSION }, body).catch(async (error: unknown) => {
      // Cut off or refused mid-stream: the id is not held a day for nothing (a client cutting sends
      // off at will would fill Redis with them); the first check deletes what was stored of it.
      await reservation.release().catch(() => undefined);
      throw error;
    });
    const recordedAt = services.now();
    const outcome = await createOnce(services, messageId, metadata, size, recordedAt);
    if (outcome === 'exists') throw new Error(`message id ${messageId} was reserved but already recorded`);
    return { messageId, outcome, recordedAt, firstCheckAt };
  } finally {
    release();
  }
}

/**
 * The payload and the record in one atomic step, which also claims the id: nothing is
 * stored before it, so there is no id to reserve first. Its lifecycle check is scheduled
 * first (while the body is read), so no crash can leave a record without one; a schedule entry
 * of an id that turns out taken stays, as another send may be counting on it, and a check
 * of an id with nothing to do simply ends. So that first check must come only once the request
 * has surely ended: one that came while a slow body was still arriving would find nothing and
 * end. A send that stalled past it anyway starts the check again once its record is written.
 */
async function recordSmallMessage(services: Services, metadata: MessageMetadata, body: ChunkBody, firstChoice: string | undefined): Promise<Recorded> {
  const firstCheckAt = after(services, services.periods.deliveryCheckMs);
  const payload = readSmallBodyInSlot(services, metadata.sender, body);
  for (let choice = firstChoice; ; choice = undefined) {
    const messageId = choice ?? services.newMessageId(services.now());
    const [bytes] = await Promise.all([payload, services.lifecycle.start(messageId, firstCheckAt)]);
    const recordedAt = services.now();
    const outcome = await createOnce(services, messageId, metadata, bytes.length, recordedAt, bytes);
    if (outcome === 'exists') continue;
    // Recorded so late that its first check may have come, found no record, and ended the id's
    // life: the message needs a check again. One held by a worker that found no record would be
    // ended by its release: brought forward, it is no longer that worker's to end.
    if (firstCheckMayHaveCome(services, firstCheckAt)) await services.lifecycle.schedule(messageId, firstCheckAt);
    return { messageId, outcome, recordedAt, firstCheckAt };
  }
}

/**
 * Records a new message. ioredis sends a command again when its connection broke before the
 * answer came, so the record may be there already, written by this very send: its second run
 * finds it, and the send must not go again under another id (a duplicate: the first record's
 * lifecycle check would deliver it too).
 */
async function createOnce(
  services: Services,
  messageId: string,
  metadata: MessageMetadata,
  firstChunkSize: number,
  recordedAt: Date,
  inlinePayload?: Buffer,
): Promise<CreateOutcome> {
  const outcome = await services.messages.create(messageId, metadata, firstChunkSize, recordedAt, inlinePayload);
  if (outcome !== 'exists') return outcome;
  const found = await services.messages.get(messageId);
  const own =
    found !== undefined &&
    found.sender === metadata.sender &&
    found.recipient === metadata.recipient &&
    found.workflowId === metadata.workflowId &&
    found.localId === metadata.localId;
  if (!own) return 'exists';
  return found.status === 'uploading' ? 'uploading' : 'accepted';
}

/**
 * A small body (its Content-Length known), held in memory while it arrives: within the sender's
 * share in bytes, so one mailbox's bodies arriving slowly hold at most that much memory (how many
 * requests it holds open is bounded by MESHBOX_MAX_CONNECTIONS_PER_CLIENT).
 */
function readSmallBodyInSlot(services: Services, sender: string, body: ChunkBody): Promise<Buffer> {
  const bytes = body.contentLength ?? services.limits.inlinePayloadBytes;
  const release = services.transfers.holdBody(sender, bytes);
  return readSmallBody(body, bytes).finally(release);
}

function after(services: Services, ms: number): Date {
  return new Date(services.now().getTime() + ms);
}

function refusalOf(request: SendRequest, recipient: Mailbox | undefined): SendRejectedError | undefined {
  if (!recipient || !recipient.active) {
    return new SendRejectedError(MeshErrorCodes.unregisteredRecipient, { detail: request.metadata.recipient });
  }
  const { workflowId } = request.metadata;
  const senderMay = workflowAllowed(request.sender.sendWorkflows, workflowId);
  if (!senderMay || !workflowAllowed(recipient.receiveWorkflows, workflowId)) {
    // Whose registration is missing: the sender's system to fix, or the recipient to ask (lookups tell who receives a workflow anyway).
    const whose = senderMay ? `${recipient.id} may not receive it` : `${request.sender.id} may not send it`;
    return new SendRejectedError(MeshErrorCodes.workflowNotRegistered, { detail: `${workflowId} (${whose})` });
  }
  return undefined;
}
