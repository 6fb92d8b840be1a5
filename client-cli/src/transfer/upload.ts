import { createReadStream, type Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { pipeline, Readable } from 'node:stream';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { AcceptedWithoutIdError, AnswerCutOffError, answeredInDoubt, MeshClientError, MeshConnectionError, NotJsonError, UnexpectedAnswerError } from '../client/errors.ts';
import type { MeshClient, SendOptions, TrackingField, TrackingInfo, TransferEncoding } from '../client/mesh-client.ts';
import { namedByServer } from '../client/message-metadata.ts';
import { sameFile } from './file-identity.ts';
import { type Checksum, fileChecksum, formatChecksum, parseChecksum } from './checksum.ts';
import { ChunkPlan, type ChunkSpan, chunkSizeWord, DEFAULT_CHUNK_SIZE_WORD } from './chunking.ts';
import type { ProgressFactory, TransferProgress } from './progress.ts';
import { sendOutcome } from './send-by-local-id.ts';
import { ByteCounter, ReleasedWhenChecked } from './streams.ts';

/** What the message says about itself; the body, its size and chunking come from the file. */
export type MessageFields = Omit<SendOptions, 'body' | 'size' | 'totalChunks' | 'contentEncoding' | 'beforeRetry'>;

export interface FileUpload {
  readonly path: string;
  /** Bytes of the file per chunk (before any gzip); resuming needs the same as the first run. */
  readonly chunkSize: number;
  /** Gzip each chunk on its own for the journey. */
  readonly gzip: boolean;
  readonly progress: ProgressFactory;
  /**
   * The file as the caller found it, which what is sent must still be (a dispatch pass: it
   * decided from it, then looked things up meanwhile); by default, the file as the send begins.
   */
  readonly taken?: Stats;
}

export interface SendFileOptions extends FileUpload {
  readonly message: MessageFields;
  /** Hash the file first (a full read) and send `sha256:<hex>` as mex-Content-Checksum. */
  readonly checksum: boolean;
  /** The line to show once a message of several chunks has its id, so it can be resumed. */
  readonly startNote?: (messageId: string, plan: ChunkPlan) => string;
  /** Hears that chunk 1 is about to go: until then (a checksum read, say) nothing has reached the server. */
  readonly onSending?: () => void;
  /** Hears the message's id once chunk 1 is stored, before any other chunk is sent. */
  readonly onStarted?: (messageId: string) => Promise<void>;
  /** Runs before every try of a one-chunk send after the first. */
  readonly beforeRetry?: () => Promise<void>;
}

export interface ResumeOptions extends FileUpload {
  readonly messageId: string;
  /** Fields given again on the command line: each must match what the message was sent with. */
  readonly expected: Partial<Pick<MessageFields, 'to' | 'workflowId' | 'subject' | 'localId' | 'fileName'>>;
  /**
   * `expected.fileName` is the file's own name, as a first run sends it without --file-name: it
   * need not match a message sent with no name (which tracking gives as MESH's `<ID>.dat`).
   */
  readonly fileNameImplied?: boolean;
  /**
   * The chunk size is the first run's for certain (dispatch's, from its note of that run): a
   * server that tells no chunk count can be resumed without checking it.
   */
  readonly chunkSizeOfFirstRun?: boolean;
  /**
   * The chunk size was given (send --resume's --chunk-size), not a default assumed: a server
   * whose tracking gives no sizes of the chunks it holds (MESH) leaves only the chunk count to
   * check it by, so a message in progress there is resumed only then (or chunkSizeOfFirstRun).
   */
  readonly chunkSizeGiven?: boolean;
  /** Hears what the resume cannot check (see resumeFile), before anything is sent. */
  readonly warn?: (text: string) => void;
  /**
   * Refuse a message that carries no checksum to check the file against (--checksum). One that
   * carries a sha256: or md5: one is checked either way, before anything is uploaded: another
   * file split alike would complete the message garbled, and only its recipient would find out.
   */
  readonly requireChecksum: boolean;
}

export interface UploadResult {
  readonly messageId: string;
  readonly totalChunks: number;
  /** The file's size. */
  readonly bytes: number;
  /** Chunks sent by this run (a resume sends only the missing ones). */
  readonly uploadedChunks: number;
  /**
   * The file changed after its last chunk was read (a writer still at it): the message holds
   * the file as it was when the send began, `bytes` long.
   */
  readonly changedAfterSend: boolean;
  /** After a resume: the status tracking reports (`accepted` when complete). */
  readonly status?: string;
  /**
   * After a resume: whether the server's tracking said which chunks it held (meshbox's
   * stored_chunks); when not, every chunk after the first was sent again.
   */
  readonly storedChunksKnown?: boolean;
}

/** A file with nothing in it: MESH refuses a message without data (417, code 02), so it is not sent at all. */
export class EmptyFileError extends Error {
  constructor(path: string) {
    super(`${basename(path)} is empty, and MESH refuses a message with no data`);
    this.name = 'EmptyFileError';
  }
}

/**
 * A file whose size says 0 but which has content (a pseudo-file, as /proc's, some FUSE mounts'):
 * the chunks are cut by that size, and it would go as an empty message.
 */
export class SizelessFileError extends Error {
  constructor(path: string) {
    super(`${basename(path)} reports a size of 0 bytes but has content (a pseudo-file, as /proc's are): copy it into a regular file, and send that`);
    this.name = 'SizelessFileError';
  }
}

/** Whether a file that reports 0 bytes gives some all the same. */
async function hasContent(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    return (await handle.read(Buffer.alloc(1), 0, 1, 0)).bytesRead > 0;
  } finally {
    await handle.close();
  }
}

/**
 * A resume whose --gzip is not the first run's, as the server's tracking tells it (meshbox's v2
 * content_encoding, MESH's v1 contentEncoding): its chunks would mix encodings in one message.
 */
export class ContentEncodingMismatchError extends Error {
  readonly messageId: string;
  /** Whether the first run's chunks went gzipped. */
  readonly firstRunGzip: boolean;

  constructor(messageId: string, firstRunGzip: boolean) {
    super(
      `the chunks of message ${messageId} so far went ${firstRunGzip ? 'with' : 'without'} --gzip (the server's tracking says so): ` +
        `resuming ${firstRunGzip ? 'without' : 'with'} it would mix encodings in one message`,
    );
    this.name = 'ContentEncodingMismatchError';
    this.messageId = messageId;
    this.firstRunGzip = firstRunGzip;
  }
}

/** A chunk failed for good (its retries are spent); says which, and of what message. */
export class ChunkUploadError extends Error {
  /** Undefined when chunk 1 failed: no message exists then. */
  readonly messageId: string | undefined;
  readonly chunkNumber: number;
  readonly totalChunks: number;
  /** The last chunk to send may have been stored, completing the message, and tracking could not tell. */
  readonly mayHaveCompleted: boolean;

  constructor(messageId: string | undefined, chunkNumber: number, totalChunks: number, cause: unknown, mayHaveCompleted = false) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(totalChunks === 1 ? reason : `chunk ${chunkNumber} of ${totalChunks} failed: ${reason}`, { cause });
    this.name = 'ChunkUploadError';
    this.messageId = messageId;
    this.chunkNumber = chunkNumber;
    this.totalChunks = totalChunks;
    this.mayHaveCompleted = mayHaveCompleted;
  }
}

/** Whether a one-chunk send that failed may all the same have delivered its message (see requestMayHaveArrived). */
export function mayHaveBeenSent(error: unknown): boolean {
  return error instanceof ChunkUploadError && error.totalChunks === 1 && requestMayHaveArrived(error.cause);
}

/**
 * Whether a failed upload request may all the same have been stored: its connection broke, or it
 * was stopped, once the request could have gone out whole (only the answer lost); the server
 * failed (500), or a gateway before it did after passing it on (502, 504), perhaps after it was
 * recorded (answeredInDoubt); or its answer said it had (a 2xx whose message id was cut off or
 * cannot be read). A refusal, a connection never made, or a failing file did not.
 */
export function requestMayHaveArrived(cause: unknown): boolean {
  return (
    (cause instanceof MeshConnectionError && cause.mayHaveArrived) ||
    (cause instanceof MeshClientError && answeredInDoubt(cause.status)) ||
    cause instanceof AnswerCutOffError ||
    cause instanceof AcceptedWithoutIdError ||
    (cause instanceof Error && cause.name === 'AbortError')
  );
}

/** The file is not what it was when the send began: its chunks would not fit together. */
export class FileChangedError extends Error {
  /** `now` undefined: the file is gone. */
  constructor(path: string, before: Stats, now: Stats | undefined) {
    const how = now === undefined ? `it was ${before.size} bytes, and is gone` : now.size === before.size ? 'rewritten' : `it was ${before.size} bytes, now ${now.size}`;
    super(`${path} changed while it was being sent (${how}): send it again once it is complete`);
    this.name = 'FileChangedError';
  }
}

/**
 * Whether tracking reports the message complete, every chunk stored: accepted or acknowledged
 * (v2's lower case, or v1's title case, as sendOutcome reads them).
 */
function isComplete(tracking: TrackingInfo): boolean {
  return sendOutcome(tracking) === 'sent';
}

export async function fileStats(path: string): Promise<Stats> {
  const info = await stat(path).catch((error: Error) => {
    throw new Error(`cannot read ${path}: ${error.message}`);
  });
  if (!info.isFile()) throw new Error(`${path} is not a file`);
  return info;
}

/**
 * Sends the chunks of one file, each streamed from disk (a fresh stream per attempt, so the
 * transport can retry it), and keeps the progress display up to date.
 */
class ChunkSender {
  readonly #client: MeshClient;
  readonly #path: string;
  readonly #file: Stats;
  readonly #plan: ChunkPlan;
  readonly #encoding: TransferEncoding;
  readonly #progress: TransferProgress;
  /** File bytes of the chunks the server holds. */
  #doneBytes: number;
  /** File bytes read by the current attempt; reset by every retry. */
  #attemptBytes = 0;
  /** Attempts made at the current chunk (the transport retries with a fresh body each time). */
  #attempts = 0;

  constructor(client: MeshClient, path: string, file: Stats, plan: ChunkPlan, gzip: boolean, progress: TransferProgress, doneBytes: number) {
    this.#client = client;
    this.#path = path;
    this.#file = file;
    this.#plan = plan;
    this.#encoding = gzip ? 'gzip' : undefined;
    this.#progress = progress;
    this.#doneBytes = doneBytes;
  }

  /** Sends chunk 1, which creates the message; returns its id. */
  async sendFirst(message: MessageFields, beforeRetry: (() => Promise<void>) | undefined): Promise<string> {
    const span = this.#plan.span(1);
    await this.#checkUnchanged();
    const messageId = await this.#client
      .sendMessage({
        ...message,
        ...(beforeRetry ? { beforeRetry } : {}),
        body: this.#body(span),
        size: span.length,
        contentEncoding: this.#encoding,
        totalChunks: this.#plan.totalChunks,
      })
      .catch((error: unknown) => {
        throw new ChunkUploadError(undefined, 1, this.#plan.totalChunks, error);
      });
    this.#finished(span);
    return messageId;
  }

  /**
   * Sends chunk n of an existing message (re-sending one replaces the server's copy, on meshbox and MESH's sandbox); `last`: the
   * last this run sends. `complete`: it failed, and tracking found the message complete (nothing
   * more to send); `stored`: unless refused as locked (423), the server may hold this run's copy.
   */
  async send(messageId: string, number: number, last: boolean): Promise<{ readonly stored: boolean; readonly complete: boolean }> {
    const span = this.#plan.span(number);
    this.#attempts = 0;
    try {
      await this.#checkUnchanged();
      await this.#client.uploadChunk(messageId, number, this.#plan.totalChunks, this.#body(span), {
        size: span.length,
        contentEncoding: this.#encoding,
      });
    } catch (error) {
      const completed = await this.#completedMeanwhile(messageId, error);
      if (completed !== true) throw new ChunkUploadError(messageId, number, this.#plan.totalChunks, error, last && completed === undefined);
      this.#finished(span);
      return { stored: !(error instanceof MeshClientError && error.status === 423), complete: true };
    }
    this.#finished(span);
    return { stored: true, complete: false };
  }

  /**
   * Whether the message is complete after a failed chunk that an attempt may have stored: one
   * refused as locked (423) or whose answer was lost, or one tried again (an earlier attempt's
   * answer lost, and this one cut off: the file changed meanwhile, say). Its last chunk stored,
   * every chunk is. Without this check a complete message would be reported as a failed send
   * (and its file sent again). Undefined when tracking cannot tell.
   */
  async #completedMeanwhile(messageId: string, error: unknown): Promise<boolean | undefined> {
    const mayHaveLanded = (error instanceof MeshClientError && error.status === 423) || requestMayHaveArrived(error) || this.#attempts > 1;
    if (!mayHaveLanded) return false;
    const tracking = await this.#client.track(messageId).catch(() => undefined);
    return tracking === undefined ? undefined : isComplete(tracking);
  }

  #finished(span: ChunkSpan): void {
    this.#doneBytes += span.length;
    this.#attemptBytes = 0;
    this.#progress.update(this.#doneBytes, this.#doneBytes);
  }

  /** A function, not a stream: each attempt reads the chunk afresh from disk. */
  #body(span: ChunkSpan): () => Readable {
    return () => {
      this.#attempts += 1;
      this.#attemptBytes = 0;
      const counter = new ByteCounter((bytes) => {
        this.#attemptBytes += bytes;
        const value = this.#doneBytes + this.#attemptBytes;
        this.#progress.update(value, value);
      });
      const source = readSpan(this.#path, span);
      // The chunk's end goes out only once the file is known to have been read whole and
      // unchanged: one rewritten or cut short as it was read would otherwise be stored garbled.
      const checked = new ReleasedWhenChecked((read) => this.#checkReadWhole(span, read));
      // pipeline() destroys every stage with the first error, so the last one (what the
      // transport reads) reports a failing file, and a failed request closes the file.
      const stages = this.#encoding === 'gzip' ? [source, counter, checked, createGzip()] : [source, counter, checked];
      return pipeline(stages, () => undefined) as unknown as Readable;
    };
  }

  /**
   * After the last chunk, which was read whole and unchanged: a change since then leaves the
   * message as the file was. A file removed since was read whole before it went: not a change of content.
   */
  async changedSinceStart(): Promise<boolean> {
    return (await this.#changed()) !== undefined;
  }

  /** The file as it is now, when it differs from what the send began with; undefined when the same, or gone (or unreadable). */
  #changed(): Promise<Stats | undefined> {
    return changedFile(this.#path, this.#file);
  }

  async #checkUnchanged(): Promise<void> {
    const now = await fileStats(this.#path);
    if (!sameFile(now, this.#file)) throw new FileChangedError(this.#path, this.#file, now);
  }

  /** A file removed meanwhile was read whole from the handle opened before, unchanged: only one there now is compared. */
  async #checkReadWhole(span: ChunkSpan, read: number): Promise<void> {
    const changed = await this.#changed();
    if (changed !== undefined || read !== span.length) throw new FileChangedError(this.#path, this.#file, changed);
  }
}

/**
 * The file at `path` as it is now, when it differs from `taken`; undefined when the same, or gone
 * (or unreadable). The chunks are cut by offset: a file that changes mid-send would make a garbled
 * message, and each chunk is read from the path anew, where another file may have been renamed.
 */
export async function changedFile(path: string, taken: Stats): Promise<Stats | undefined> {
  const now = await stat(path).catch(() => undefined);
  return now !== undefined && !sameFile(now, taken) ? now : undefined;
}

/** Stopped with the client: a stop asked for while a large file is read takes effect at once. */
async function checksumOf(client: MeshClient, path: string, size: number, algorithm: Checksum['algorithm'], progress: ProgressFactory): Promise<Checksum> {
  const display = progress({ label: 'checksum', unit: 'bytes', total: size });
  let hashed = 0;
  try {
    return await fileChecksum(
      path,
      algorithm,
      (bytes) => {
        hashed += bytes;
        display.update(hashed, hashed);
      },
      client.signal,
    );
  } finally {
    display.stop();
  }
}

/** Sends a file as a new message, in as many chunks as the chunk size makes. */
export async function sendFile(client: MeshClient, options: SendFileOptions): Promise<UploadResult> {
  const file = options.taken ?? (await fileStats(options.path));
  if (file.size === 0) {
    if (await hasContent(options.path)) throw new SizelessFileError(options.path);
    // Gzipped, even an empty file is some bytes, which the server takes (it judges the body as sent).
    if (!options.gzip) throw new EmptyFileError(options.path);
  }
  const plan = new ChunkPlan(file.size, options.chunkSize);
  let message = options.message;
  if (options.checksum) {
    const checksum = await checksumOf(client, options.path, file.size, 'sha256', options.progress);
    message = { ...message, checksum: formatChecksum(checksum) };
  }
  const progress = options.progress({ label: 'sending', unit: 'bytes', total: file.size });
  try {
    const sender = new ChunkSender(client, options.path, file, plan, options.gzip, progress, 0);
    options.onSending?.();
    const messageId = await sender.sendFirst(message, options.beforeRetry);
    await options.onStarted?.(messageId);
    if (plan.totalChunks > 1 && options.startNote) progress.note(options.startNote(messageId, plan));
    for (let number = 2; number <= plan.totalChunks; number += 1) await sender.send(messageId, number, number === plan.totalChunks);
    const changedAfterSend = await sender.changedSinceStart();
    return { messageId, totalChunks: plan.totalChunks, bytes: file.size, uploadedChunks: plan.totalChunks, changedAfterSend };
  } finally {
    progress.stop();
  }
}

/**
 * The chunk numbers tracking says the server holds, checked for sense; undefined when it does not
 * say (stored_chunks is meshbox's: MESH's tracking has no such field).
 */
function storedChunks(tracking: TrackingInfo, totalChunks: number): Set<number> | undefined {
  const listed = tracking.stored_chunks;
  if (listed === undefined || listed === null) return undefined;
  if (!Array.isArray(listed)) throw new Error(`the server's tracking of ${tracking.message_id} gives stored_chunks that is not a list`);
  const stored = new Set<number>();
  for (const number of listed) {
    if (!Number.isInteger(number) || (number as number) < 1 || (number as number) > totalChunks) {
      throw new Error(`the server's tracking lists a chunk that cannot exist: ${String(number)} (of ${totalChunks})`);
    }
    stored.add(number as number);
  }
  return stored;
}

const TRACKED_FIELDS: Readonly<Record<keyof ResumeOptions['expected'], { readonly flag: string; readonly field: TrackingField }>> = {
  to: { flag: '--to', field: 'recipient' },
  workflowId: { flag: '--workflow', field: 'workflow_id' },
  subject: { flag: '--subject', field: 'subject' },
  localId: { flag: '--local-id', field: 'local_id' },
  fileName: { flag: '--file-name', field: 'filename' },
};

/** Repeating the original command line with --resume is natural; a value that differs means the wrong message. */
function checkExpected(tracking: TrackingInfo, options: Pick<ResumeOptions, 'expected' | 'fileNameImplied'>): void {
  for (const [key, { flag, field }] of Object.entries(TRACKED_FIELDS)) {
    const given = options.expected[key as keyof ResumeOptions['expected']];
    if (given === undefined) continue;
    // A field the server's tracking leaves out (MESH's v2 has no subject; its v1, asked for it, may have failed) cannot be checked.
    const recorded = tracking[field];
    if (recorded === undefined) continue;
    if (key === 'fileName' && options.fileNameImplied && namedByServer(String(recorded), tracking.message_id)) continue;
    const same = key === 'to' ? String(recorded ?? '').toUpperCase() === given.toUpperCase() : (recorded ?? '') === given;
    if (!same) {
      const sentWith = String(recorded ?? '') === '' ? `without ${flag}` : `with ${flag} '${String(recorded)}'`;
      throw new Error(`message ${tracking.message_id} was sent ${sentWith}, not '${given}': is it the right message?`);
    }
  }
}

/**
 * Finishes an interrupted upload: asks tracking which chunks the server holds and sends the
 * others. A server whose tracking does not say (MESH's has no stored_chunks) gets every chunk
 * after the first again, in ascending order: chunk 1 came with the send that made the message, and
 * MESH's sandbox (handlers/outbox.py), as meshbox, takes a chunk again while the message is
 * uploading, the new copy replacing the old (MESH itself does not document it). The file,
 * chunk size and --gzip must be those of the first run: the chunk count is checked, --gzip
 * against the content encoding tracking gives (if any), the sizes of the chunks the server holds
 * (meshbox's tracking gives them), and the content against the message's checksum, when it
 * carries one. Without those sizes (MESH) nothing but the chunk count checks the chunk size, which
 * another size can give as well: such a message is resumed only with the chunk size given
 * (chunkSizeGiven) or known (chunkSizeOfFirstRun), and without a checksum nothing checks the
 * file (warn says so). A message already complete is checked the same way, then left alone; one
 * found complete as its chunks go (an earlier run's last chunk landing late: a chunk refused as
 * locked) is done.
 */
export async function resumeFile(client: MeshClient, options: ResumeOptions): Promise<UploadResult> {
  const file = options.taken ?? (await fileStats(options.path));
  const plan = new ChunkPlan(file.size, options.chunkSize);
  const { tracking, v1Failure } = await trackInFull(client, options.messageId);
  const messageId = tracking.message_id || options.messageId;
  const complete = isComplete(tracking);
  if (!complete && sendOutcome(tracking) !== 'uploading') {
    const why = tracking.status_description ? ` (${tracking.status_description})` : '';
    throw new Error(`message ${messageId} is ${tracking.status}${why}: only an upload in progress can be resumed`);
  }
  if (tracking.chunk_count === undefined && !options.chunkSizeOfFirstRun) {
    throw new Error(
      `the server's tracking does not give the chunk count of message ${messageId} ` +
        `(${v1Failure ? `and its v1 tracking failed: ${v1Failure.message}` : 'nor its v1 tracking chunkCount'}): ` +
        'a resume with another --chunk-size than the first run would garble the message, and cannot be told from it',
    );
  }
  if (tracking.chunk_count !== undefined && tracking.chunk_count !== plan.totalChunks) {
    throw new Error(
      `message ${messageId} has ${String(tracking.chunk_count)} chunks, but ${options.path} (${file.size} bytes) in chunks of ` +
        `${plan.chunkSize} bytes makes ${plan.totalChunks}: resume with the same file and --chunk-size as the first run`,
    );
  }
  // After the chunk count: a field tracking cannot give (its v1 failing) must not hide that cause.
  checkExpected(tracking, options);
  if (complete) {
    // It lists no chunks: its size, that of them all, is what tells the file (stored compressed after a gzip run: nothing to compare).
    await checkSameFile(client, tracking, plan, options, options.gzip ? () => undefined : checkMessageSize);
    // The message's figures, as checked: after a gzip run the server has only the compressed size, and the file's is given, as a send gives it.
    return { messageId, totalChunks: plan.totalChunks, bytes: file.size, uploadedChunks: 0, status: tracking.status, changedAfterSend: false, storedChunksKnown: true };
  }
  checkEncoding(tracking, messageId, options.gzip);
  const listed = storedChunks(tracking, plan.totalChunks);
  const sizesKnown = Array.isArray(tracking.stored_chunk_bytes);
  if (!sizesKnown && !options.chunkSizeOfFirstRun && !options.chunkSizeGiven) {
    throw new Error(
      `the server's tracking of message ${messageId} gives no sizes of the chunks it holds (MESH's has none), so only the chunk count ` +
        `(${plan.totalChunks}) would check the chunk size, and another size making as many chunks would complete the message garbled: ` +
        `give the first run's --chunk-size to resume it (--chunk-size ${DEFAULT_CHUNK_SIZE_WORD} if it gave none)`,
    );
  }
  await checkSameFile(client, tracking, plan, options, options.gzip ? checkGzippedSizes : checkStoredSizes);
  if (!options.chunkSizeOfFirstRun && parseChecksum(recordedChecksum(tracking)) === undefined) {
    const gzipUnknown = gzipOfMessage(tracking) === undefined ? ' and --gzip' : '';
    const unchecked = sizesKnown
      ? `: the sizes of the chunks the server holds check --chunk-size, but nothing checks that ${options.path} is the first run's`
      : ` and the server's tracking no sizes of the chunks it holds: nothing but the chunk count checks that ${options.path} and --chunk-size ${chunkSizeWord(plan.chunkSize)}${gzipUnknown} are the first run's`;
    options.warn?.(
      `message ${messageId} carries no checksum${unchecked} (a file rewritten at the same size ` +
        'would complete the message garbled; only a checksum, sent with --checksum, lets a resume check the file)',
    );
  }

  // Chunk 1 is stored whenever the message exists: it was the send that made it.
  const stored = listed ?? new Set([1]);
  // Ascending, so the last chunk goes last: MESH's sandbox (handlers/outbox.py send_chunk) accepts
  // the message as soon as its last chunk arrives, whatever chunks it still lacks, so a last chunk
  // sent before a missing one would deliver the message without it (meshbox waits for them all).
  const missing: number[] = [];
  for (let number = 1; number <= plan.totalChunks; number += 1) if (!stored.has(number)) missing.push(number);
  const storedBytes = plan.bytesIn(stored);
  const progress = options.progress({ label: 'resuming', unit: 'bytes', total: file.size, initialValue: storedBytes });
  if (listed === undefined && missing.length > 0) progress.note(resendingAllNote(messageId, plan.totalChunks));
  const sender = new ChunkSender(client, options.path, file, plan, options.gzip, progress, storedBytes);
  let uploadedChunks = 0;
  try {
    for (const number of missing) {
      const sent = await sender.send(messageId, number, number === missing.at(-1));
      if (sent.stored) uploadedChunks += 1;
      if (sent.complete) break;
    }
  } finally {
    progress.stop();
  }
  // The server accepts the message once it has every chunk; make sure it did.
  const after = await client.track(messageId);
  if (sendOutcome(after) === 'uploading') {
    const holds = Array.isArray(after.stored_chunks) ? ` (the server holds chunks ${after.stored_chunks.join(', ')})` : '';
    throw new Error(`every chunk was sent, yet message ${messageId} is still uploading${holds}`);
  }
  return {
    messageId,
    totalChunks: plan.totalChunks,
    bytes: file.size,
    uploadedChunks,
    status: after.status,
    changedAfterSend: await sender.changedSinceStart(),
    storedChunksKnown: listed !== undefined,
  };
}

/** Said when every chunk after the first goes again: the server's tracking lists none it holds. */
function resendingAllNote(messageId: string, totalChunks: number): string {
  return (
    `the server does not say which chunks of message ${messageId} it holds (its tracking has no stored_chunks): ` +
    `sending ${chunkNumbersAfterFirst(totalChunks)} again, in order (MESH's sandbox, as meshbox, stores a chunk sent again in place of its copy)`
  );
}

/** `chunk 2`, `chunks 2 and 3` or `chunks 2 to N`: all but the first of a message's chunks. */
function chunkNumbersAfterFirst(totalChunks: number): string {
  if (totalChunks === 2) return 'chunk 2';
  return totalChunks === 3 ? 'chunks 2 and 3' : `chunks 2 to ${totalChunks}`;
}

/** The message's checksum as tracking gives it, if a text. */
function recordedChecksum(tracking: TrackingInfo): string | undefined {
  return typeof tracking.checksum === 'string' ? tracking.checksum : undefined;
}

/**
 * Whether the message's chunks went gzipped, by tracking's content_encoding: meshbox's v2 while
 * uploading (`gzip` or null), or MESH's v1 contentEncoding (`gzip` or ''), filled in by
 * trackInFull; undefined when tracking does not say. (v1's compressFlag and isCompressed are
 * mex-Content-Compressed, the sender's own compression, not the transfer's.)
 */
export function gzipOfMessage(tracking: TrackingInfo): boolean | undefined {
  const encoding = tracking.content_encoding;
  if (encoding === null) return false;
  if (typeof encoding !== 'string') return undefined;
  const named = encoding.trim().toLowerCase();
  if (named === 'gzip') return true;
  return named === '' || named === 'identity' ? false : undefined;
}

/** A --gzip that is not the first run's, where tracking tells: refused before any chunk goes (a server need not refuse the chunk). */
function checkEncoding(tracking: TrackingInfo, messageId: string, gzip: boolean): void {
  const firstRunGzip = gzipOfMessage(tracking);
  if (firstRunGzip !== undefined && firstRunGzip !== gzip) throw new ContentEncodingMismatchError(messageId, firstRunGzip);
}

/** The v1 tracking fields that fill what MESH's v2 tracking lacks, by their v2 names. */
const V1_FIELDS_FOR_V2 = {
  chunkCount: 'chunk_count',
  checksum: 'checksum',
  fileSize: 'file_size',
  subject: 'subject',
  sender: 'sender',
  contentEncoding: 'content_encoding',
} as const;

/** Refusals that are not of v1 tracking itself: the mailbox's credentials or rate, a proxy's; a retry's timeout. */
const NOT_REFUSING_V1 = new Set([401, 403, 407, 408, 429]);

/**
 * Whether v1 tracking failed as a server without it fails: a refusal of the request (400, 404,
 * 406, 410: not auth or rate), a 501 (not implemented), or an answer that is not v1 tracking (not
 * JSON, another message's). Aborts, connection failures, retries spent and the like are no answer
 * about v1: thrown on.
 */
function v1Unavailable(error: unknown): error is Error {
  if (error instanceof NotJsonError || error instanceof UnexpectedAnswerError) return true;
  if (!(error instanceof MeshClientError)) return false;
  return error.status === 501 || (error.status >= 400 && error.status < 500 && !NOT_REFUSING_V1.has(error.status));
}

/**
 * Tracking with what a resume checks: MESH's v2 tracking has no chunk_count (nor checksum,
 * file_size, subject, sender, content encoding), which its v1 tracking has, so a server that leaves
 * chunk_count out is asked for that too, and its v1 fields fill those v2 left out. A v1 request
 * refused, or answered with something else, leaves the v2 answer as it is, and is given as
 * v1Failure; any other failure is thrown.
 */
async function trackInFull(client: MeshClient, messageId: string): Promise<{ readonly tracking: TrackingInfo; readonly v1Failure?: Error }> {
  const tracking = await client.track(messageId);
  if (tracking.chunk_count !== undefined) return { tracking };
  let v1: Readonly<Record<string, unknown>>;
  try {
    v1 = await client.trackV1(messageId);
  } catch (error) {
    if (v1Unavailable(error)) return { tracking, v1Failure: error };
    throw error;
  }
  const filled: Record<string, unknown> = { ...tracking };
  for (const [v1Field, v2Field] of Object.entries(V1_FIELDS_FOR_V2)) {
    const value = v1[v1Field];
    const wanted = v2Field === 'chunk_count' || v2Field === 'file_size' ? typeof value === 'number' : typeof value === 'string';
    if (filled[v2Field] === undefined && wanted) filled[v2Field] = value;
  }
  return { tracking: filled as TrackingInfo };
}

/** Whether the file, split by the plan, is what the server holds, by the sizes it holds. */
type SizeCheck = (tracking: TrackingInfo, plan: ChunkPlan, path: string) => void | Promise<void>;

/** Whether the file is the message's, the cheap way first: the sizes the server holds, then the content by the message's checksum. */
async function checkSameFile(client: MeshClient, tracking: TrackingInfo, plan: ChunkPlan, options: ResumeOptions, checkSizes: SizeCheck): Promise<void> {
  await checkSizes(tracking, plan, options.path);
  await verifyAgainstMessage(client, tracking, plan.fileSize, options);
}

/** A complete message records its size as stored: another file of as many chunks is not what it holds. */
function checkMessageSize(tracking: TrackingInfo, plan: ChunkPlan, path: string): void {
  if (tracking.file_size === undefined || tracking.file_size === plan.fileSize) return;
  throw new Error(
    `message ${tracking.message_id} holds ${tracking.file_size} bytes, but ${path} has ${plan.fileSize}: is it the file the message was sent from? ` +
      '(a first run with --gzip stored its chunks compressed: give --gzip again)',
  );
}

/**
 * The same chunk count can come from different chunk sizes; the sizes the server holds tell
 * whether this file is being split the way it was.
 */
function checkStoredSizes(tracking: TrackingInfo, plan: ChunkPlan, path: string): void {
  const numbers = tracking.stored_chunks ?? [];
  const sizes = tracking.stored_chunk_bytes;
  if (!sizes) return;
  numbers.forEach((number, index) => {
    const expected = plan.span(number).length;
    if (sizes[index] !== expected) {
      throw new Error(
        `chunk ${number} of message ${tracking.message_id} has ${String(sizes[index])} bytes on the server, but ${path} in chunks of ` +
          `${plan.chunkSize} bytes gives ${expected}: resume with the same file, --chunk-size and --gzip as the first run ` +
          '(a first run with --gzip stored its chunks compressed)',
      );
    }
  });
}

/**
 * checkStoredSizes after a gzip run, whose chunks the server holds compressed: this file split as
 * it was gives, gzipped as this CLI gzips (deterministically), the sizes of chunk 1 and of the last
 * chunk stored. A chunk size that makes as many chunks cuts both elsewhere: missing chunks cut so
 * would garble the message. Two chunks are compressed again, not every one sent.
 */
async function checkGzippedSizes(tracking: TrackingInfo, plan: ChunkPlan, path: string): Promise<void> {
  const numbers = tracking.stored_chunks ?? [];
  const sizes = tracking.stored_chunk_bytes;
  if (!sizes || numbers.length === 0) return;
  const checked = [...new Set([0, numbers.length - 1])];
  // The file's own sizes: the first run went without --gzip. The server refuses a gzip chunk in
  // its message, and send then says how to resume.
  if (checked.every((index) => sizes[index] === plan.span(numbers[index]!).length)) return;
  for (const index of checked) {
    const number = numbers[index]!;
    const expected = await gzippedSize(path, plan.span(number));
    if (sizes[index] !== expected) {
      throw new Error(
        `chunk ${number} of message ${tracking.message_id} has ${String(sizes[index])} bytes on the server, but ${path} in chunks of ` +
          `${plan.chunkSize} bytes gives ${expected} gzipped: resume with the same file, --chunk-size and --gzip as the first run ` +
          "(a first run by another program, or another Node's zlib, compresses differently: send the file again as a new message)",
      );
    }
  }
}

async function gzippedSize(path: string, span: ChunkSpan): Promise<number> {
  let size = 0;
  await pipelineAsync(readSpan(path, span), createGzip(), async (compressed: AsyncIterable<Buffer>) => {
    for await (const part of compressed) size += part.length;
  });
  return size;
}

/** One chunk of the file from disk: createReadStream cannot read zero bytes (end would precede start), the empty file's one chunk. */
function readSpan(path: string, span: ChunkSpan): Readable {
  return span.length === 0 ? Readable.from([]) : createReadStream(path, { start: span.start, end: span.end });
}

async function verifyAgainstMessage(client: MeshClient, tracking: TrackingInfo, size: number, options: ResumeOptions): Promise<void> {
  const { path } = options;
  const recorded = parseChecksum(recordedChecksum(tracking));
  if (!recorded) {
    if (!options.requireChecksum) return;
    throw new Error(`message ${tracking.message_id} carries no sha256: or md5: checksum to check ${path} against`);
  }
  const actual = await checksumOf(client, path, size, recorded.algorithm, options.progress);
  if (actual.hex !== recorded.hex) {
    throw new Error(`${path} is not the file message ${tracking.message_id} was sent from: its checksum is ${formatChecksum(actual)}, the message's ${formatChecksum(recorded)}`);
  }
}
