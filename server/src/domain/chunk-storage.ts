import { pipeline, type Readable, Transform } from 'node:stream';
import { MeshErrorCodes } from '../../../shared/src/protocol/index.ts';
import { MeshError, SendRejectedError } from './errors.ts';
import type { ChunkBody } from './send.ts';
import type { Services } from './services.ts';

/** Bounds on what one mailbox may make the server store; all configurable. */
export interface TransferLimits {
  /** Single-chunk messages up to this size are kept in Redis with their record (0: never). */
  readonly inlinePayloadBytes: number;
  readonly maxChunkBytes: number;
  readonly maxChunks: number;
  readonly maxMessageBytes: number;
}

export class PayloadTooLargeError extends MeshError {
  constructor(what: string, limit: number, messageId?: string) {
    super(413, MeshErrorCodes.payloadTooLarge, { detail: `${what} exceeds ${limit} bytes`, ...(messageId ? { messageId } : {}) });
  }
}

/** Counts bytes on their way to storage and stops the stream at the first byte over the limit. */
class ByteLimit extends Transform {
  bytes = 0;
  exceeded = false;
  readonly #limit: number;

  constructor(limit: number) {
    super();
    this.#limit = limit;
  }

  override _transform(data: Buffer, _encoding: BufferEncoding, done: (error?: Error | null, data?: Buffer) => void): void {
    this.bytes += data.length;
    if (this.bytes > this.#limit) {
      this.exceeded = true;
      done(new Error('chunk size limit exceeded'));
      return;
    }
    done(null, data);
  }
}

/** Whether a send is small enough to keep its payload in Redis, in the same atomic step as its record. */
export function fitsInline(services: Services, totalChunks: number, body: ChunkBody): boolean {
  const { inlinePayloadBytes, maxChunkBytes } = services.limits;
  // Over the chunk limit it takes the object-storage path, which refuses it with a 413.
  return totalChunks === 1 && body.contentLength !== undefined && body.contentLength <= Math.min(inlinePayloadBytes, maxChunkBytes);
}

/** Reads a small body (its Content-Length already checked against the inline limit). */
export async function readSmallBody(body: ChunkBody): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of body.stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/**
 * Streams one chunk into object storage within the chunk size limit and returns its size.
 * A declared Content-Length over the limit is refused before a byte is read; a streamed
 * body is cut off at the limit, and nothing of it stays stored.
 */
export async function storeChunk(services: Services, messageId: string, chunkNumber: number, body: ChunkBody): Promise<number> {
  const limit = services.limits.maxChunkBytes;
  if (body.contentLength !== undefined && body.contentLength > limit) {
    throw new PayloadTooLargeError('chunk', limit, messageId);
  }
  const counted = new ByteLimit(limit);
  // pipeline() destroys `counted` when the request errors or closes early, so an aborted
  // upload fails the S3 call instead of hanging it.
  pipeline(body.stream as Readable, counted, () => {});
  try {
    await services.payloads.putChunk(messageId, chunkNumber, counted, body.contentLength);
  } catch (error) {
    if (!counted.exceeded) throw error;
    await services.payloads.deleteChunk(messageId, chunkNumber);
    throw new PayloadTooLargeError('chunk', limit, messageId);
  }
  // A streamed body can turn out empty only once it has ended; MESH refuses empty data.
  if (counted.bytes === 0) {
    await services.payloads.deleteChunk(messageId, chunkNumber);
    throw new SendRejectedError(MeshErrorCodes.missingDataFile, { messageId });
  }
  return counted.bytes;
}
