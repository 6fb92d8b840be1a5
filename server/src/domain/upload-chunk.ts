import { randomBytes } from 'node:crypto';
import { MeshErrorCodes } from '../../../shared/src/protocol/index.ts';
import { MeshError, MessageNotFoundError, ForbiddenError, SendRejectedError } from './errors.ts';
import type { MessageRecord, StoreChunkOutcome } from '../store/messages.ts';
import type { ChunkObject } from '../store/payloads.ts';
import { discardUpload, PayloadTooLargeError, storeChunk } from './chunk-storage.ts';
import { runFollowUpSteps, type UnfinishedStep } from './follow-up-steps.ts';
import { type ChunkBody, returnIfRecipientDeactivated } from './send.ts';
import type { Services } from './services.ts';

export interface ChunkUpload {
  readonly sender: string;
  readonly messageId: string;
  readonly chunkNumber: number;
  readonly totalChunks: number;
  readonly body: ChunkBody;
  /** The same request as one served before (its token's retry): its answer then was a 202. */
  readonly repeated: boolean;
  /**
   * Names this upload's copy of the chunk (newChunkCopyId), kept with its token's claim: a
   * retry's is its first try's, so that it can tell whether the copy recorded is that try's.
   * Without one, the upload's copy is named afresh.
   */
  readonly copyId?: string | undefined;
}

/** A new upload's copy id (see ChunkUpload.copyId). */
export function newChunkCopyId(): string {
  return randomBytes(4).toString('hex');
}

/** Whether the copy of the chunk recorded for the message is this upload's (its copy id's). */
export async function chunkCopyRecorded(services: Services, upload: { readonly messageId: string; readonly chunkNumber: number; readonly copyId: string }): Promise<boolean> {
  return (await services.messages.recordedChunkCopy(upload.messageId, upload.chunkNumber)) === upload.copyId;
}

/**
 * Stores chunk n of the sender's uploading message (a retried chunk replaces its copy); accepts
 * the message when it was the last missing. Returns what failed after acceptance (runFollowUpSteps).
 */
export async function uploadChunk(services: Services, upload: ChunkUpload): Promise<readonly UnfinishedStep[]> {
  const message = await services.messages.get(upload.messageId);
  if (!message) throw new MessageNotFoundError(upload.messageId);
  // Checked before the body is stored, and again atomically when the chunk is recorded.
  const before = outcomeBefore(message, upload);
  if (before === 'locked') {
    // A retried final chunk: its first try may have been cut off before the message reached the inbox.
    if (message.status === 'accepted') await services.messages.deliverChecked(message.id, message.recipient);
    // Its first try completed the message, and was answered 202: so is its retry (the answer was
    // lost), also once the message has been acknowledged or has expired meanwhile.
    if (upload.repeated) return [];
  }
  refuse(before, upload, services);
  // Its first try recorded its copy of the chunk, and was answered 202 (an upload keeps its
  // token only then): the answer was lost, and the chunk is stored. Stored again, the repeat's
  // body, which nothing compares with the first (a streamed one has no length to tell them
  // apart), would replace it. A repeat while its first try is still storing, or of a first try
  // that failed and has not given its token back yet, stores its own copy: another copy of the
  // chunk recorded before (a re-upload's first try replacing it) is not this request's.
  const { copyId = newChunkCopyId() } = upload;
  if (upload.repeated && (await chunkCopyRecorded(services, { ...upload, copyId }))) return [];
  const version = await services.messages.allocateChunkVersion(upload.messageId, copyId);
  if (version === undefined) throw new MessageNotFoundError(upload.messageId);
  const chunk: ChunkObject = { messageId: upload.messageId, number: upload.chunkNumber, version };
  // Should this chunk complete the message and the request stop before delivering it, the
  // next lifecycle check delivers it: an uploading message is looked at every deliveryCheckMs.
  const size = await storeChunk(services, upload.sender, chunk, upload.body);
  const { outcome, replacedVersion } = await services.messages.storeChunk(
    upload.messageId,
    upload.sender,
    { number: upload.chunkNumber, size, contentEncoding: upload.body.contentEncoding, version: chunk.version },
    services.now(),
    services.limits.maxMessageBytes,
  );
  if (outcome !== 'uploading' && outcome !== 'accepted' && outcome !== 'recorded') {
    // Not recorded (the message moved on meanwhile, or would grow too large): this upload's object is nobody's.
    await discardUpload(services, chunk);
    // A retry that came while its first try was still storing the final chunk, and that first
    // try completed the message meanwhile (and delivers it): answered as that try is.
    if (outcome === 'locked' && upload.repeated) return [];
    refuse(outcome, upload, services);
  }
  return runFollowUpSteps({
    ...(outcome === 'accepted'
      ? {
          delivery: services.messages.deliverChecked(message.id, message.recipient),
          schedule: returnIfRecipientDeactivated(services, message.id, message.recipient),
        }
      : {}),
    ...(replacedVersion !== undefined ? { cleanup: services.payloads.deleteChunk({ ...chunk, version: replacedVersion }) } : {}),
  });
}

/** Refusals seen before the chunk is stored, beyond those its recording can meet. */
type RefusalBefore = 'mismatch';

function outcomeBefore(message: MessageRecord, upload: ChunkUpload): StoreChunkOutcome | RefusalBefore {
  if (message.sender !== upload.sender) return 'forbidden';
  // Only an upload can end in error: its lifecycle gave up waiting for the rest.
  if (message.status === 'error') return 'abandoned';
  if (message.status !== 'uploading') return 'locked';
  if (upload.chunkNumber > message.totalChunks) return 'range';
  if (upload.totalChunks !== message.totalChunks) return 'mismatch';
  if (message.contentEncoding !== upload.body.contentEncoding) return 'encoding';
  return 'uploading';
}

function refuse(outcome: StoreChunkOutcome | RefusalBefore, upload: ChunkUpload, services: Services): void {
  const options = { messageId: upload.messageId };
  switch (outcome) {
    case 'not_found':
      throw new MessageNotFoundError(upload.messageId);
    case 'forbidden':
      throw new ForbiddenError();
    case 'locked':
      throw new MeshError(423, MeshErrorCodes.messageLocked, options);
    case 'abandoned':
      throw new MeshError(423, MeshErrorCodes.uploadAbandoned, options);
    case 'mismatch':
      throw new SendRejectedError(MeshErrorCodes.invalidHeaderChunks, options);
    case 'range':
      throw new MeshError(406, MeshErrorCodes.chunkOutOfRange, options);
    case 'encoding':
      throw new SendRejectedError(MeshErrorCodes.contentEncodingChanged, options);
    case 'too_large':
      throw new PayloadTooLargeError('message', services.limits.maxMessageBytes, upload.messageId);
    case 'uploading':
    case 'accepted':
    case 'recorded':
      return;
  }
}
