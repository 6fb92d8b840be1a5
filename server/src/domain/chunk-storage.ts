import { pipeline, type Readable, Transform } from 'node:stream';
import { MeshErrorCodes } from '../../../shared/src/protocol/index.ts';
import { BodyStalledError, MeshError, SendRejectedError } from './errors.ts';
import type { ChunkObject } from '../store/payloads.ts';
import type { ChunkBody } from './send.ts';
import type { Services } from './services.ts';

/** Bounds on what one mailbox may make the server store; all configurable. */
export interface TransferLimits {
  /** Single-chunk messages up to this size are kept in Redis with their record (0: never). */
  readonly inlinePayloadBytes: number;
  readonly maxChunkBytes: number;
  readonly maxChunks: number;
  readonly maxMessageBytes: number;
  /** Object-storage transfers one mailbox may have in progress at once, per server process (0: no limit). */
  readonly maxTransfersPerMailbox: number;
}

export class PayloadTooLargeError extends MeshError {
  constructor(what: string, limit: number, messageId?: string) {
    super(413, MeshErrorCodes.payloadTooLarge, { detail: `${what} exceeds ${limit} bytes`, ...(messageId ? { messageId } : {}) });
  }
}

/** What every gzip stream begins with (RFC 1952). */
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

function notGzip(messageId: string | undefined): MeshError {
  return new MeshError(422, MeshErrorCodes.unsupportedContentEncoding, {
    detail: 'Content-Encoding: gzip, but the body is not gzip data',
    ...(messageId ? { messageId } : {}),
  });
}

/**
 * Counts bytes on their way to storage, and stops the stream at the first byte over the limit
 * or, for a body said to be gzip, at a start that is not gzip: a recipient that does not take
 * gzip would get nothing it could read, and every try of its download would fail the same way.
 */
class ChunkGuard extends Transform {
  bytes = 0;
  /** Why the stream was stopped; undefined while it flows. */
  refusal: MeshError | undefined;
  readonly #limit: number;
  readonly #gzip: boolean;
  readonly #messageId: string | undefined;
  /** The start of gzip's magic, not passed on until the rest of it has come. */
  #held: Buffer | undefined;

  constructor(limit: number, gzip: boolean, messageId: string | undefined) {
    super();
    this.#limit = limit;
    this.#gzip = gzip;
    this.#messageId = messageId;
  }

  override _transform(data: Buffer, _encoding: BufferEncoding, done: (error?: Error | null, data?: Buffer) => void): void {
    const start = this.bytes;
    this.bytes += data.length;
    if (this.bytes > this.#limit) this.refusal = new PayloadTooLargeError('chunk', this.#limit, this.#messageId);
    else if (this.#gzip && start < GZIP_MAGIC.length) {
      // The magic may come split over two parts: each checks what it holds of it.
      const expected = GZIP_MAGIC.subarray(start, start + data.length);
      if (!data.subarray(0, expected.length).equals(expected)) this.refusal = notGzip(this.#messageId);
      else if (this.bytes < GZIP_MAGIC.length) {
        // Held until the magic is whole: a body that ends inside it (a lone 0x1f) must not reach
        // storage whole, where an upload given all its bytes may be kept though the call was aborted.
        this.#held = data;
        done();
        return;
      }
    }
    const passed = this.#held ? Buffer.concat([this.#held, data]) : data;
    this.#held = undefined;
    done(this.refusal ?? null, this.refusal ? undefined : passed);
  }

  /** A body that ended inside the magic (a lone 0x1f) is no gzip either; an empty one is refused as empty. */
  override _flush(done: (error?: Error | null) => void): void {
    if (this.#gzip && this.bytes > 0 && this.bytes < GZIP_MAGIC.length) this.refusal = notGzip(this.#messageId);
    done(this.refusal ?? null);
  }
}

/**
 * Whether a send is small enough to keep its payload in Redis, in the same atomic step as its
 * record, and Redis has room for it (a nearly full Redis keeps its room for records).
 */
export function fitsInline(services: Services, totalChunks: number, body: ChunkBody): boolean {
  const { inlinePayloadBytes, maxChunkBytes } = services.limits;
  // Over the chunk limit it takes the object-storage path, which refuses it with a 413.
  const small = totalChunks === 1 && body.contentLength !== undefined && body.contentLength <= Math.min(inlinePayloadBytes, maxChunkBytes);
  return small && services.redisRoomForPayloads();
}

/**
 * Reads a small body (its Content-Length already checked against the inline limit), of at most
 * `maxBytes` (what is held for it: a body longer than said is refused, not read on into memory);
 * one said to be gzip must be.
 */
export async function readSmallBody(body: ChunkBody, maxBytes: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let bytes = 0;
  for await (const part of body.stream) {
    bytes += (part as Buffer).length;
    if (bytes > maxBytes) throw new PayloadTooLargeError('message', maxBytes);
    parts.push(part as Buffer);
  }
  const payload = Buffer.concat(parts);
  if (body.contentEncoding === 'gzip' && !payload.subarray(0, GZIP_MAGIC.length).equals(GZIP_MAGIC)) throw notGzip(undefined);
  return payload;
}

/**
 * Streams one chunk upload into object storage, as its own object, within the chunk size limit
 * (and, said to be gzip, beginning as gzip does) and returns its size. A declared Content-Length over the limit is refused before a byte is
 * read; a streamed body is cut off at the limit. An upload that fails or is refused leaves
 * nothing of itself stored (nor touches another upload's object).
 */
export async function storeChunk(services: Services, sender: string, chunk: ChunkObject, body: ChunkBody): Promise<number> {
  const release = admitChunkUpload(services, sender, body, refusedMessageId(chunk));
  try {
    return await storeAdmittedChunk(services, chunk, body);
  } finally {
    release();
  }
}

/**
 * The refusals a chunk upload meets before a byte is read: a declared Content-Length over the
 * chunk limit (413), and no transfer slot free for the sender (429). Taken before anything is
 * reserved for it, a refusal costs nothing. Returns the slot's release.
 */
export function admitChunkUpload(services: Services, sender: string, body: ChunkBody, messageId: string | undefined): () => void {
  const limit = services.limits.maxChunkBytes;
  if (body.contentLength !== undefined && body.contentLength > limit) throw new PayloadTooLargeError('chunk', limit, messageId);
  return services.transfers.take(sender);
}

/** storeChunk, for an upload admitted (admitChunkUpload) by its caller. */
export async function storeAdmittedChunk(services: Services, chunk: ChunkObject, body: ChunkBody): Promise<number> {
  const counted = new ChunkGuard(services.limits.maxChunkBytes, body.contentEncoding === 'gzip', refusedMessageId(chunk));
  // A request cut off, or a body refused on its way, fails the pipeline: that ends the S3 call.
  const abort = new AbortController();
  pipeline(body.stream as Readable, counted, (error) => error && abort.abort(error));
  try {
    await services.payloads.putChunk(chunk, counted, body.contentLength, abort);
  } catch (error) {
    // Some S3 servers keep what arrived of a cut-off upload.
    await discardUpload(services, chunk);
    if (counted.refusal) throw counted.refusal;
    // S3 gives up on an upload idle ~20 s, long before this server's own idle timeout: the client's doing, as that timeout's would be.
    if (error instanceof Error && error.name === 'RequestTimeout' && !body.stream.readableEnded) throw new BodyStalledError(refusedMessageId(chunk));
    throw error;
  }
  // A streamed body can turn out empty only once it has ended; MESH refuses empty data.
  if (counted.bytes === 0) {
    await discardUpload(services, chunk);
    throw new SendRejectedError(MeshErrorCodes.missingDataFile, { messageId: refusedMessageId(chunk) });
  }
  return counted.bytes;
}

/** The upload of chunk 1 with its send, whose message exists only once it is stored: no version. */
export const SENT_CHUNK_VERSION = '';

/** The message a refused upload names: a send's is not recorded, so its refusal names none (as for any other refused send). */
function refusedMessageId(chunk: ChunkObject): string | undefined {
  return chunk.version === SENT_CHUNK_VERSION ? undefined : chunk.messageId;
}

/**
 * Deletes the object of an upload that no record refers to. Should that fail too, the object
 * stays until the message's payload is purged (every object under the message goes then).
 */
export async function discardUpload(services: Services, chunk: ChunkObject): Promise<void> {
  await services.payloads.deleteChunk(chunk).catch(() => undefined);
}
