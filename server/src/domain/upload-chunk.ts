import { MeshErrorCodes } from '../../../shared/src/protocol/index.ts';
import { MeshError, MessageNotFoundError, ForbiddenError, SendRejectedError } from './errors.ts';
import type { MessageRecord, StoreChunkOutcome } from '../store/messages.ts';
import type { ChunkBody } from './send.ts';
import type { Services } from './services.ts';

export interface ChunkUpload {
  readonly sender: string;
  readonly messageId: string;
  readonly chunkNumber: number;
  readonly totalChunks: number;
  readonly body: ChunkBody;
}

/** Stores chunk n ≥ 2 of the sender's message; accepts the message when it was the last missing. */
export async function uploadChunk(services: Services, upload: ChunkUpload): Promise<void> {
  const message = await services.messages.get(upload.messageId);
  if (!message) throw new MessageNotFoundError(upload.messageId);
  // Checked before the body is stored, and again atomically when the chunk is recorded.
  refuse(outcomeBefore(message, upload), upload);
  const size = await services.payloads.putChunk(upload.messageId, upload.chunkNumber, upload.body.stream, upload.body.contentLength);
  const outcome = await services.messages.storeChunk(
    message,
    upload.sender,
    { number: upload.chunkNumber, size, contentEncoding: upload.body.contentEncoding },
    services.now(),
  );
  refuse(outcome, upload);
}

function outcomeBefore(message: MessageRecord, upload: ChunkUpload): StoreChunkOutcome {
  if (message.sender !== upload.sender) return 'forbidden';
  if (message.status !== 'uploading') return 'locked';
  if (upload.chunkNumber < 2 || upload.totalChunks !== message.totalChunks) return 'range';
  if (message.contentEncoding !== upload.body.contentEncoding) return 'encoding';
  return 'uploading';
}

function refuse(outcome: StoreChunkOutcome, upload: ChunkUpload): void {
  const options = { messageId: upload.messageId };
  switch (outcome) {
    case 'not_found':
      throw new MessageNotFoundError(upload.messageId);
    case 'forbidden':
      throw new ForbiddenError();
    case 'locked':
      throw new MeshError(423, MeshErrorCodes.messageLocked, options);
    case 'range':
      throw new SendRejectedError(MeshErrorCodes.invalidHeaderChunks, options);
    case 'encoding':
      throw new SendRejectedError(MeshErrorCodes.contentEncodingChanged, options);
    case 'uploading':
    case 'accepted':
      return;
  }
}
