import { pipeline, Transform, type TransformCallback } from 'node:stream';
import type { MessageRecord } from '../store/messages.ts';
import type { ChunkObject, StoredChunk, StoredObject } from '../store/payloads.ts';
import { PROCESS_CLOCKS_APART_MS } from './clocks.ts';
import { MessageGoneError, MessageNotFoundError, PayloadMissingError, ServiceUnavailableError } from './errors.ts';
import type { Services } from './services.ts';

/** The recipient's view of a message: found only in its own mailbox, downloadable only while accepted. */
export async function findDownloadable(services: Services, mailboxId: string, messageId: string): Promise<MessageRecord> {
  const message = await services.messages.get(messageId);
  if (!message || message.recipient !== mailboxId) throw new MessageNotFoundError(messageId);
  if (!downloadable(message)) await refuseAsGone(services, mailboxId, messageId, message.status === 'uploading');
  return message;
}

/**
 * Accepted, or acknowledged while its payload is kept (MESHBOX_PAYLOAD_RETENTION_SECONDS), as
 * MESH serves it: a client may acknowledge before it has read every chunk (mesh-client reads
 * chunks 2..N only as its reader reaches them), or fetch it again after a crash.
 */
function downloadable(message: MessageRecord): boolean {
  return message.status === 'accepted' || (message.status === 'acknowledged' && message.payloadPurgedAt === undefined);
}

/**
 * 410 for a recipient's message that cannot be downloaded: no longer (expired, or acknowledged
 * and its payload purged), or not yet (still uploading). One no longer downloadable is still listed only if a delivery
 * was cut off before its check (docs/reliability.md): the recipient asking for it, by download
 * or acknowledgement, takes it off the list. One still uploading was never listed, and is left
 * alone: its last chunk may be delivering it as this answers, and would be taken off again.
 */
export async function refuseAsGone(services: Services, mailboxId: string, messageId: string, stillUploading: boolean): Promise<never> {
  if (!stillUploading) await services.messages.leaveInbox(messageId, mailboxId);
  throw new MessageGoneError(messageId);
}

export interface DownloadedChunk {
  readonly message: MessageRecord;
  readonly chunkNumber: number;
  /** Undefined for a message with no payload (a report). */
  readonly chunk: StoredChunk | undefined;
}

/**
 * What a download of chunk n would answer, without downloading it (a HEAD): the record, and the
 * chunk's stored size (undefined for a report, which has no chunks).
 */
export async function describeChunk(
  services: Services,
  mailboxId: string,
  messageId: string,
  chunkNumber: number,
): Promise<{ readonly message: MessageRecord; readonly size: number | undefined }> {
  const [message, size] = await Promise.all([findDownloadable(services, mailboxId, messageId), services.messages.chunkSize(messageId, chunkNumber)]);
  refuseMissingChunk(message, messageId, chunkNumber);
  return { message, size: recordedChunkSize(message, size) };
}

/** A message accepted whole at its send has its size recorded, not its one chunk's. */
function recordedChunkSize(message: MessageRecord, chunkSize: number | undefined): number | undefined {
  return chunkSize ?? (message.totalChunks === 1 ? message.size : undefined);
}

/** 404 for a chunk the message does not have: it has 1 to N, and a report (no chunks) is downloaded as chunk 1. */
function refuseMissingChunk(message: MessageRecord, messageId: string, chunkNumber: number): void {
  if (chunkNumber < 1 || chunkNumber > Math.max(1, message.totalChunks)) throw new MessageNotFoundError(messageId);
}

/**
 * Opens chunk n of a message for streaming to its recipient. Downloading changes no state.
 * `abortSignal`: the recipient has gone, and object storage need not be waited for.
 */
export async function downloadChunk(
  services: Services,
  mailboxId: string,
  messageId: string,
  chunkNumber: number,
  abortSignal?: AbortSignal,
): Promise<DownloadedChunk> {
  // Where the chunk's bytes are is read with the record, in the same round trip.
  const [message, source] = await Promise.all([
    findDownloadable(services, mailboxId, messageId),
    services.messages.chunkSource(messageId, chunkNumber),
  ]);
  refuseMissingChunk(message, messageId, chunkNumber);
  if (message.totalChunks === 0) {
    await services.audit.record({ action: 'download', actor: mailboxId, messageId, detail: 'report' });
    return { message, chunkNumber, chunk: undefined };
  }
  const chunk = message.inlinePayload
    ? inlineChunk(source.inlinePayload)
    : await openStoredChunk(services, mailboxId, { messageId, number: chunkNumber, version: source.version }, recordedChunkSize(message, source.size), abortSignal);
  if (!chunk) throw message.inlinePayload || purgeMayBeUnderWay(services, message) ? new MessageGoneError(messageId) : await payloadMissing(services, message, chunkNumber);
  try {
    await services.audit.record({ action: 'download', actor: mailboxId, messageId, detail: `chunk ${chunkNumber}` });
  } catch (error) {
    // Nobody will read the object opened: closing it frees its storage connection and transfer slot.
    if (!Buffer.isBuffer(chunk.body)) chunk.body.destroy();
    throw error;
  }
  // A read that failed meanwhile has had its 'error' and 'close': streamed, it would send nothing, and never end.
  if (!Buffer.isBuffer(chunk.body) && chunk.body.destroyed) throw new ServiceUnavailableError('object storage failed as the chunk was opened');
  return { message, chunkNumber, chunk };
}

/**
 * An acknowledged message's payload may be being purged as it is asked for, once its retention
 * has passed by the clock of the worker purging it, which may be ahead of this process's by up to
 * PROCESS_CLOCKS_APART_MS. Before then a chunk missing from the bucket is lost (a bucket restored
 * from an older snapshot, a lifecycle rule shorter than the retention), which operators alert on.
 */
function purgeMayBeUnderWay(services: Services, message: MessageRecord): boolean {
  if (message.status !== 'acknowledged') return false;
  return services.now().getTime() >= message.statusAt.getTime() + services.periods.payloadRetentionMs - PROCESS_CLOCKS_APART_MS;
}

/**
 * A chunk of a message still downloadable missing from the bucket. One waiting in the inbox has
 * it noted, and its lifecycle check brought forward to now: the check verifies the loss, and
 * sends the message back to its sender as undeliverable, rather than leave it listed, failing
 * each download, until its inbox expiry (docs/reliability.md).
 */
async function payloadMissing(services: Services, message: MessageRecord, chunkNumber: number): Promise<PayloadMissingError> {
  if (message.status === 'accepted') {
    // Noted first: the check brought forward must find it. Redis failing here leaves the message
    // to its inbox expiry, as before; the loss is still answered, logged and counted as such.
    await services.messages
      .noteMissingChunk(message.id, chunkNumber)
      .then(() => services.lifecycle.schedule(message.id, services.now()))
      .catch(() => undefined);
  }
  return new PayloadMissingError(message.id, chunkNumber);
}

function inlineChunk(payload: Buffer | undefined): StoredChunk | undefined {
  return payload ? { body: payload, size: payload.length } : undefined;
}

/** A chunk from object storage, streamed under one of the mailbox's transfer slots until its stream closes. */
async function openStoredChunk(
  services: Services,
  mailboxId: string,
  chunk: ChunkObject,
  recordedSize: number | undefined,
  abortSignal: AbortSignal | undefined,
): Promise<StoredChunk | undefined> {
  const release = services.transfers.take(mailboxId);
  try {
    const object = await services.payloads.getChunk(chunk, abortSignal);
    if (!object) {
      release();
      return undefined;
    }
    object.body.once('close', release);
    return heldToRecordedSize(object, recordedSize, `chunk ${chunk.number} of message ${chunk.messageId}`);
  } catch (error) {
    release();
    throw error;
  }
}

/**
 * The recipient is told the size recorded when the chunk was stored, and object storage's
 * answer is held to it: one that disagrees is a fault of storage, never a shorter payload
 * passed off as whole, nor bytes sent past the Content-Length, which the client would read as
 * its next answer. Storage that does not say (an S3 gateway answering chunked) has what it
 * streams counted, and a count that comes out otherwise cuts the response off.
 */
function heldToRecordedSize(object: StoredObject, recordedSize: number | undefined, what: string): StoredChunk {
  const size = recordedSize ?? object.size;
  if (size === undefined) {
    object.body.destroy();
    throw new Error(`no size is recorded for ${what}, and object storage tells none`);
  }
  if (object.size === undefined) return { body: pipeline(object.body, exactly(size, what), () => {}), size };
  if (object.size !== size) {
    object.body.destroy();
    throw new Error(`object storage holds ${object.size} bytes for ${what}, recorded as ${size}`);
  }
  return { body: object.body, size };
}

/** Passes a stream through, failing it if it brings more or fewer than `size` bytes. */
function exactly(size: number, what: string): Transform {
  let seen = 0;
  const mismatch = (): Error => new Error(`object storage streamed ${seen}${seen > size ? ' or more' : ''} bytes for ${what}, recorded as ${size}`);
  return new Transform({
    transform(data: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
      seen += data.length;
      if (seen > size) done(mismatch());
      else done(null, data);
    },
    flush(done: TransformCallback): void {
      done(seen === size ? null : mismatch());
    },
  });
}
