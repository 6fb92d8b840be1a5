import { createHash, type Hash } from 'node:crypto';
import { type FileHandle, lstat, rename, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { gunzipWhole } from '../../../shared/src/gunzip.ts';
import { answerCutOff, isGone, MeshClientError } from '../client/errors.ts';
import type { MeshClient, RawChunkDownload } from '../client/mesh-client.ts';
import type { MessageMetadata } from '../client/message-metadata.ts';
import { backoffDelay } from '../client/transport.ts';
import { TEXT_DISGUISES } from '../client/untrusted-text.ts';
import { type Checksum, fileChecksum, formatChecksum, parseChecksum } from './checksum.ts';
import { formatBytes } from './chunking.ts';
import { DEFAULT_MIN_FREE_BYTES, DiskFullError, DiskSpaceError, ensureRoom, isDiskFull } from './disk-room.ts';
import { placeWithoutReplacing, syncFolder, writeFileAtomically } from './durable-files.ts';
import { ignoreMissing } from './fs-errors.ts';
import { isReport, messageDescriptionText } from './message-description.ts';
import { discardPartialsOf, type DownloadOf, type KeptChunks, keptWhole, openPartialFile, type PartialFile } from './partial-download.ts';
import type { ProgressFactory, TransferProgress } from './progress.ts';
import { ByteCounter } from './streams.ts';

export interface DownloadOptions {
  readonly messageId: string;
  /** Where to write (-o); by default the sender's file name, else `<id>.dat` (a report: `<id>.json`), in `cwd`. */
  readonly output: string | undefined;
  readonly cwd: string;
  readonly progress: ProgressFactory;
  /** Replace a file already at the target; otherwise it is kept and the download refused. */
  readonly overwrite: boolean;
  /** The message's HEAD, when the caller has asked for it already (it names the target a file at which is refused). */
  readonly described?: MessageMetadata;
  /** Bytes the download leaves free on its disk: it stops before writing past them (0: no check; default DEFAULT_MIN_FREE_BYTES). */
  readonly minFreeBytes?: number | undefined;
}

export interface DownloadResult {
  readonly messageId: string;
  /** `DATA`, or `REPORT` for a non-delivery report, saved as its description (`path`, JSON): it has no payload. */
  readonly messageType: string;
  readonly path: string;
  readonly totalChunks: number;
  readonly bytes: number;
  /** The checksum the content was verified against; undefined when the message carries none we can check. */
  readonly checksum: Checksum | undefined;
  /** Chunks an earlier run had kept, which this one continued after (0: it fetched them all; totalChunks: it fetched none, only chunk 1's headers). */
  readonly continuedAfter: number;
}

/**
 * The name to save a message under when no -o is given: the sender's mex-FileName made safe
 * (`safeFileName`), else `<id>.dat`.
 */
export function defaultFileName(fileName: string | undefined, messageId: string): string {
  const safe = safeFileName(fileName);
  return safe === undefined ? `${messageId.toUpperCase()}.dat` : fitFileName(safe);
}

/** Names Windows keeps for devices, with any extension and spaces before it: `NUL.txt` and `NUL .txt` are the null device too. */
const WINDOWS_DEVICE_NAME = /^(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³]|CONIN\$|CONOUT\$|CLOCK\$) *(\..*)?$/i;

/**
 * The sender's mex-FileName reduced to a bare name (it comes from another organisation and must
 * not pick a folder); undefined when nothing of it is left. Characters that some file system
 * refuses or that disguise a name (`:` opens an NTFS stream, a right-to-left override hides an
 * `.exe`) become `_`; controls go. Nor may it be a hidden file (`.bashrc`, `.npmrc`: saved in a
 * home folder, a sender would set up the user's shell or tools), begin as an option does (`-rf`:
 * a later `rm *` in the folder would take it for one), or be a Windows device name.
 */
export function safeFileName(fileName: string | undefined): string | undefined {
  const bare = basename((fileName ?? '').replaceAll('\\', '/'))
    // eslint-disable-next-line no-control-regex -- control characters have no place in a file name
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, '')
    .replace(/[<>:"|?*]/g, '_')
    .replace(TEXT_DISGUISES, '_')
    .replace(/[. ]+$/, '')
    .replace(/^\.+/, '_')
    .replace(/^-/, '_');
  if (bare === '') return undefined;
  return WINDOWS_DEVICE_NAME.test(bare) ? `_${bare}` : bare;
}

/**
 * File systems take names of at most 255 bytes, and the temporary file beside the target adds
 * 15 (`.<name>.<8 hex>.part`); MESH allows 300 characters. A longer name loses the end of its
 * stem, keeping a short extension. A name whose extension is too long to keep loses the dot
 * before what is left of it: cut through, that extension would read as one the sender never
 * gave, and a sender could pick where the cut falls (`report.exeXXXXXXXXXXXXXXX` saved as
 * `report.exe`, past any check of the name as sent).
 */
const MAX_FILE_NAME_BYTES = 240;

export function fitFileName(name: string, maxBytes = MAX_FILE_NAME_BYTES): string {
  if (Buffer.byteLength(name) <= maxBytes) return name;
  const dot = name.lastIndexOf('.');
  const extension = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : '';
  const stem = Array.from(name.slice(0, name.length - extension.length));
  while (stem.length > 0 && Buffer.byteLength(stem.join('') + extension) > maxBytes) stem.pop();
  const cut = stem.join('');
  if (extension !== '') return cut + extension;
  const lastDot = cut.lastIndexOf('.');
  return lastDot > 0 ? `${cut.slice(0, lastDot)}_${cut.slice(lastDot + 1)}` : cut;
}

/** The target is taken: a download never replaces a file unless asked to. */
export class TargetExistsError extends Error {
  /** What was found, without the advice (a DownloadIncompleteError gives its own). */
  readonly found: string;

  /**
   * `appeared`: during the download (the name was free when it began). `keptWhole`: an earlier
   * run kept the whole message beside it, which --overwrite saves (-o would fetch it all again).
   */
  constructor(target: string, appeared = false, keptWhole = false) {
    const found = `${target} ${appeared ? 'appeared during the download' : 'already exists'} and was left as it is`;
    super(
      keptWhole
        ? `${found}; the whole message, kept by an earlier run, is beside it: the same command with --overwrite puts it in its place without fetching it again`
        : `${found}: give -o with another name (or --overwrite to replace it)`,
    );
    this.name = 'TargetExistsError';
    this.found = found;
  }
}

/**
 * A folder where the file is to go: the rename into place cannot replace it, so the download
 * would fail only once fetched whole, and so would every run after.
 */
class TargetIsFolderError extends Error {
  constructor(target: string) {
    super(`${target} is a folder, so the message cannot be saved under that name (nothing was downloaded)`);
    this.name = 'TargetIsFolderError';
  }
}

/** Through a link too: one to a folder is where its maker keeps files, not a file to replace. */
export async function isFolder(path: string): Promise<boolean> {
  return (await stat(path).catch(ignoreMissing))?.isDirectory() === true;
}

/**
 * A HEAD refused for the message (not there, gone, or HEAD not served) has no body to say why:
 * the download's own request then does, and a gone message's kept chunks are discarded there.
 * Anything else (the server or network failing past the retries) is the download's failure.
 */
function headRefused(error: unknown): undefined {
  if (error instanceof MeshClientError && HEAD_REFUSALS.has(error.status)) return undefined;
  throw error;
}
const HEAD_REFUSALS = new Set([404, 405, 410, 501]);

/** Where a message goes: -o, else the sender's file name (made safe), or a report's description as <ID>.json. */
function targetOf(metadata: MessageMetadata, options: Pick<DownloadOptions, 'messageId' | 'output' | 'cwd'>): string {
  const named = isReport(metadata) ? `${options.messageId.toUpperCase()}.json` : defaultFileName(metadata.fileName, options.messageId);
  return resolve(options.cwd, options.output ?? named);
}

/** refuseTarget for the message these headers describe; returns its target. */
async function refuseTargetOf(metadata: MessageMetadata, options: DownloadOptions): Promise<string> {
  const target = targetOf(metadata, options);
  const checksum = isReport(metadata) ? '' : (metadata.checksum ?? '');
  await refuseTarget({ messageId: options.messageId, target, totalChunks: metadata.totalChunks, checksum }, options.overwrite);
  return target;
}

/** Refused before anything is fetched (and again at the end): a folder at the target, and unless overwriting, anything else there. */
async function refuseTarget(download: DownloadOf, overwrite: boolean): Promise<void> {
  const { target } = download;
  if (await isFolder(target)) throw new TargetIsFolderError(target);
  if (!overwrite && (await lstat(target).catch(ignoreMissing))) throw new TargetExistsError(target, false, await keptWhole(download));
}

/**
 * Puts the finished file at the target in one step. Unless overwriting, without replacing
 * anything there (placeWithoutReplacing): a file that appeared there during the download is
 * kept. The temporary name stays until the partial file is finished.
 */
async function moveIntoPlace(temporary: string, target: string, overwrite: boolean): Promise<void> {
  if (overwrite) {
    await rename(temporary, target);
  } else {
    await placeWithoutReplacing(temporary, target).catch((error: NodeJS.ErrnoException) => {
      throw error.code === 'EEXIST' ? new TargetExistsError(target, true) : error;
    });
  }
  // Its name flushed too: a message acknowledged once it is downloaded must outlive a power cut.
  await syncFolder(dirname(target));
}

/** Writes to the file go in batches of about this much. */
const WRITE_BATCH_BYTES = 1024 * 1024;

/** What is left of `buffers` once the first `written` bytes are gone (a short write). */
function remainderAfter(buffers: readonly Buffer[], written: number): Buffer[] {
  const rest: Buffer[] = [];
  let skip = written;
  for (const buffer of buffers) {
    if (skip >= buffer.length) {
      skip -= buffer.length;
    } else {
      rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
      skip = 0;
    }
  }
  return rest;
}

/**
 * Whether gunzip refused what the server holds, not what a broken connection left: data no gzip
 * stream can hold (TLS lets nothing garbled through), or a stream cut short though every byte
 * announced arrived.
 */
function undecodable(error: unknown, received: number, announced: number | undefined): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'Z_DATA_ERROR' || (code === 'Z_BUF_ERROR' && received === announced);
}

/** A chunk's body broke off or arrived garbled: worth fetching the chunk again. */
class ChunkBodyError extends Error {
  constructor(chunkNumber: number, cause: unknown) {
    const plain = answerCutOff(cause);
    const reason = plain instanceof Error ? plain.message : String(plain);
    super(`chunk ${chunkNumber} could not be read: ${reason}`, { cause });
    this.name = 'ChunkBodyError';
  }
}

/**
 * Writes decoded chunks one after another into the open temporary file, hashing as it goes
 * when there is a checksum to verify. A chunk that fails part-way is cut off again (rewind),
 * so a retry starts from a clean end of file.
 */
class ChunkWriter {
  /** Bytes written so far: the offset of the next chunk. */
  bytes = 0;
  readonly #handle: FileHandle;
  readonly #hash: Hash | undefined;
  /** The running hash saw bytes that were then cut off: hash the finished file instead. */
  #hashStale = false;
  /** Bytes the running hash has seen (ahead of `bytes` while a batch is pending). */
  #hashed = 0;
  /** Blocks not yet written: the network delivers ~16 KiB at a time, too small to write one by one. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** Throws when `bytes` more would leave the disk too full. */
  readonly #room: (bytes: number) => Promise<void>;

  /** `start`: bytes an earlier run wrote, which the running hash has not seen. */
  constructor(handle: FileHandle, checksum: Checksum | undefined, start: number, room: (bytes: number) => Promise<void>) {
    this.#handle = handle;
    this.#room = room;
    this.#hash = checksum ? createHash(checksum.algorithm) : undefined;
    this.bytes = start;
    this.#hashed = start;
    this.#hashStale = start > 0;
  }

  /** Streams one chunk into the file, gunzipping it if it came gzipped. */
  async write(chunk: RawChunkDownload, chunkNumber: number, onBytes: () => void): Promise<void> {
    const wire = new ByteCounter();
    const stages: Readable[] = chunk.contentEncoding === 'gzip' ? [chunk.body, wire, gunzipWhole()] : [chunk.body, wire];
    // pipeline() passes a failure of any stage on to the last, which the loop below reads.
    const decoded = pipeline(stages, () => undefined) as unknown as Readable;
    let writing = false;
    try {
      for await (const data of decoded) {
        writing = true;
        await this.#append(data as Buffer);
        writing = false;
        onBytes();
      }
      writing = true;
      await this.#flush();
    } catch (error) {
      // A full disk is not the network's fault; retrying would not help.
      if (writing) throw error;
      if (undecodable(error, wire.bytes, chunk.contentLength)) {
        // Kept, its chunks before would fail the same way at every pass until the message
        // expires: a sender's zip bomb with a broken last chunk held the disk nearly full.
        throw new ContentMismatchError(`chunk ${chunkNumber} does not decompress (${(error as Error).message}): the sender's gzip data is broken; nothing was saved`);
      }
      throw new ChunkBodyError(chunkNumber, error);
    }
    if (chunk.contentLength !== undefined && wire.bytes !== chunk.contentLength) {
      throw new ChunkBodyError(chunkNumber, new Error(`received ${wire.bytes} of the ${chunk.contentLength} bytes announced`));
    }
  }

  /** Cuts the file back to `offset`, undoing a chunk that failed part-way. */
  async rewind(offset: number): Promise<void> {
    this.#pending = [];
    this.#pendingBytes = 0;
    await this.#handle.truncate(offset);
    if (this.#hashed !== offset) this.#hashStale = true;
    this.#hashed = offset;
    this.bytes = offset;
  }

  /** Flushes to disk (before the rename, so an ack after it never loses data) and checks the size. */
  async finish(): Promise<void> {
    await this.#handle.sync();
    const { size } = await this.#handle.stat();
    if (size !== this.bytes) throw new ContentMismatchError(`the file holds ${size} bytes, but ${this.bytes} were received`);
  }

  async digest(path: string, algorithm: Checksum['algorithm'], signal?: AbortSignal): Promise<Checksum> {
    if (!this.#hash || this.#hashStale) return fileChecksum(path, algorithm, undefined, signal);
    return { algorithm, hex: this.#hash.digest('hex') };
  }

  async #append(data: Buffer): Promise<void> {
    this.#hash?.update(data);
    this.#hashed += data.length;
    this.#pending.push(data);
    this.#pendingBytes += data.length;
    if (this.#pendingBytes >= WRITE_BATCH_BYTES) await this.#flush();
  }

  /** Writes what is pending at the end of the file; `bytes` counts only what is written. */
  async #flush(): Promise<void> {
    await this.#room(this.#pendingBytes);
    let buffers = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    while (buffers.length > 0) {
      const { bytesWritten } = await this.#handle.writev(buffers, this.bytes);
      if (bytesWritten === 0) throw new Error('the file takes no more data');
      this.bytes += bytesWritten;
      buffers = remainderAfter(buffers, bytesWritten);
    }
  }
}

/**
 * A chunk that names another message than the one asked for (a server mixing answers up), or
 * none (no download: MESH names the message on every chunk): nothing of it is saved.
 */
function refuseOtherMessage(chunk: RawChunkDownload, messageId: string): void {
  const named = chunk.metadata.messageId;
  if (named?.toUpperCase() === messageId.toUpperCase()) return;
  chunk.body.destroy();
  throw new Error(
    named === undefined
      ? `asked for message ${messageId}, the server answered with no message id (mex-MessageID): not a download`
      : `asked for message ${messageId}, the server sent chunk ${chunk.metadata.chunkNumber} of message ${named}`,
  );
}

/**
 * Refuses an answer that is not the chunk asked for, or whose status contradicts the chunk
 * count (206: more follow; 200: the last): writing it, or stopping early, would garble or cut
 * the file silently, and `receive` would then acknowledge it.
 */
function checkChunk(chunk: RawChunkDownload, messageId: string, chunkNumber: number, totalChunks: number): void {
  refuseOtherMessage(chunk, messageId);
  const { metadata, status } = chunk;
  const expectedStatus = chunkNumber < totalChunks ? PARTIAL_CONTENT : OK;
  const problem =
    metadata.headers['mex-chunk-range'] === undefined && chunkNumber > 1
      ? `the server's answer for chunk ${chunkNumber} has no mex-Chunk-Range`
      : metadata.headers['mex-chunk-range'] !== undefined && metadata.chunkNumber !== chunkNumber
        ? `the server sent chunk ${metadata.chunkNumber} when asked for chunk ${chunkNumber}`
        : metadata.totalChunks !== totalChunks
          ? `chunk ${chunkNumber} says the message has ${metadata.totalChunks} chunks, chunk 1 said ${totalChunks}`
          : status !== expectedStatus
            ? `chunk ${chunkNumber} of ${totalChunks} came with HTTP ${status}, not ${expectedStatus}${status === PARTIAL_CONTENT ? ' (which says more chunks follow)' : ''}`
            : undefined;
  if (problem) {
    chunk.body.destroy();
    throw new Error(problem);
  }
}

const OK = 200;
const PARTIAL_CONTENT = 206;

/**
 * Fetches and writes chunk n. The transport already retries a request that fails before its
 * answer; this also retries one whose body breaks off (the file is cut back first), with
 * the client's retry budget and backoff.
 */
async function receiveChunk(
  client: MeshClient,
  messageId: string,
  chunkNumber: number,
  totalChunks: number,
  fetched: RawChunkDownload | undefined,
  writer: ChunkWriter,
  progress: TransferProgress,
): Promise<void> {
  const offset = writer.bytes;
  let pending = fetched;
  for (let attempt = 0; ; attempt += 1) {
    const chunk = pending ?? (await client.downloadRawChunk(messageId, chunkNumber));
    pending = undefined;
    checkChunk(chunk, messageId, chunkNumber, totalChunks);
    try {
      await writer.write(chunk, chunkNumber, () => progress.update(chunkNumber - 1, writer.bytes));
      return;
    } catch (error) {
      if (!(error instanceof ChunkBodyError) || attempt >= client.retries) throw error;
      await writer.rewind(offset);
      await sleep(backoffDelay(client.retryDelayMs, attempt), undefined, { signal: client.signal });
    }
  }
}

/** The data received is not the message's: nothing of it is worth keeping. */
class ContentMismatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ContentMismatchError';
  }
}

/**
 * A download of several chunks failed part-way, and the whole chunks it had are kept for the next
 * run; or all of them, verified, when a file appeared at the target during the download.
 */
export class DownloadIncompleteError extends Error {
  readonly kept: KeptChunks;
  readonly totalChunks: number;

  constructor(cause: unknown, kept: KeptChunks, totalChunks: number) {
    // A target taken: keptNote says what to do, not TargetExistsError's advice (-o would fetch it all again).
    super(cause instanceof TargetExistsError ? cause.found : cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = 'DownloadIncompleteError';
    this.kept = kept;
    this.totalChunks = totalChunks;
  }

  /**
   * What is kept, and what goes on with it (`continuer`: 'the next receive'; `pastTakenTarget`:
   * what goes on when a file took the target meanwhile).
   */
  keptNote(continuer: string, pastTakenTarget = `${continuer} with --overwrite`): string {
    const { chunks, bytes } = this.kept;
    // Only a download that may replace the file there goes on (one whose note of every chunk failed keeps fewer).
    const saver = this.cause instanceof TargetExistsError ? pastTakenTarget : continuer;
    if (chunks < this.totalChunks) {
      return `the first ${chunks} of ${this.totalChunks} chunks (${formatBytes(bytes)}) are kept: ${saver} continues from chunk ${chunks + 1}`;
    }
    return `all ${chunks} chunks (${formatBytes(bytes)}) are kept, the whole message: ${saver} saves it without fetching it again`;
  }
}

/**
 * Whether what a failed download wrote may serve a later run: not when the message is gone, or the
 * data wrong, nor when it stopped for want of room (kept, it would hold the disk nearly full).
 */
function worthKeeping(error: unknown): boolean {
  return !(error instanceof ContentMismatchError || error instanceof DiskSpaceError || error instanceof DiskFullError || isGone(error));
}

/** A message the server still describes, though it answered a chunk of it 404 or 410. */
export class ChunkUnavailableError extends Error {
  constructor(messageId: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(
      `the server still lists message ${messageId} but cannot serve all of it: ${reason}; its operators should look (give them the message id); it may be tried again later`,
      { cause },
    );
    this.name = 'ChunkUnavailableError';
  }
}

/**
 * A 404 or 410 for a chunk means the message is gone (acknowledged elsewhere, expired) only if
 * the server no longer describes it either: one that does (its HEAD reads no storage) holds a
 * message it cannot serve, a chunk lost from its storage say, and the download failed.
 */
async function goneOrUnavailable(client: MeshClient, messageId: string, error: MeshClientError): Promise<Error> {
  // A HEAD that fails (a server without HEAD, the network) tells nothing: gone, as the chunk said.
  const described = await client.head(messageId).then(
    () => true,
    () => false,
  );
  return described ? new ChunkUnavailableError(messageId, error) : error;
}

/** A failure as the user needs to hear of it: a full disk, a chunk the server cannot serve, or as it is. */
async function explained(client: MeshClient, messageId: string, folder: string, error: unknown): Promise<unknown> {
  if (isDiskFull(error)) return new DiskFullError(folder, error);
  return isGone(error) ? goneOrUnavailable(client, messageId, error) : error;
}

/**
 * Downloads every chunk, in order, into a partial file beside the target, verifies it (size,
 * and the message's sha256/md5 checksum when it has one), then moves it into place: a reader
 * never sees a half-written file. A failed download of one chunk leaves nothing; one of several
 * keeps its whole chunks (openPartialFile), which the same download continues next time
 * (DownloadIncompleteError says so). Without `overwrite`, a file already at the target (or
 * appearing there meanwhile) is kept and the download refused: at the start, before any chunk is
 * asked for (the name from a HEAD), and again as the verified file is moved into place, when a message of several chunks
 * is kept whole, which the same download with `overwrite` then saves without fetching it again.
 * A folder at the target is refused at the start, `overwrite` or not.
 */
export async function downloadFile(client: MeshClient, options: DownloadOptions): Promise<DownloadResult> {
  const { messageId } = options;
  /** Gone: what an earlier run kept of it can never be continued. */
  // The HEAD below said gone already: a chunk refused as gone then needs no HEAD to tell.
  let headSaidGone = false;
  const forgetIfGone = async (refusal: unknown): Promise<never> => {
    const error = isGone(refusal) && !headSaidGone ? await goneOrUnavailable(client, messageId, refusal) : refusal;
    if (isGone(error)) {
      const folder = options.output === undefined ? resolve(options.cwd) : dirname(resolve(options.cwd, options.output));
      await discardPartialsOf(folder, messageId).catch(() => undefined);
    }
    throw error;
  };
  // A file the download may not replace is refused before the download begins (its first chunk
  // read from storage, and a download in the audit trail): its name is in the message's headers.
  const described = options.overwrite
    ? undefined
    : (options.described ??
      (await client.head(messageId).catch((error: unknown) => {
        headSaidGone = isGone(error);
        return headRefused(error);
      })));
  if (described) await refuseTargetOf(described, options);
  const first = await client.downloadRawChunk(messageId, 1).catch(forgetIfGone);
  refuseOtherMessage(first, messageId);
  const { metadata } = first;
  if (isReport(metadata)) return saveReport(first, options);
  const totalChunks = metadata.totalChunks;
  const target = targetOf(metadata, options);
  const expected = parseChecksum(metadata.checksum);
  let partial: PartialFile | undefined;
  let progress: TransferProgress | undefined;
  try {
    // Before the other chunks: a multi-GB download is not fetched only to be refused at the end.
    const download: DownloadOf = { messageId, target, totalChunks, checksum: metadata.checksum ?? '' };
    await refuseTarget(download, options.overwrite);
    partial = await openPartialFile(download);
    const { kept } = partial;
    if (kept.chunks > 0) first.body.destroy();
    const folder = dirname(partial.path);
    const writer = new ChunkWriter(partial.handle, expected, kept.bytes, (bytes) => ensureRoom(folder, bytes, options.minFreeBytes ?? DEFAULT_MIN_FREE_BYTES));
    progress = options.progress({ label: 'downloading', unit: 'chunks', total: totalChunks, initialValue: kept.chunks, initialBytes: kept.bytes });
    for (let chunkNumber = kept.chunks + 1; chunkNumber <= totalChunks; chunkNumber += 1) {
      await receiveChunk(client, messageId, chunkNumber, totalChunks, chunkNumber === 1 ? first : undefined, writer, progress);
      progress.update(chunkNumber, writer.bytes);
      if (chunkNumber < totalChunks) await partial.keep({ chunks: chunkNumber, bytes: writer.bytes });
    }
    progress.stop();
    await writer.finish();
    if (expected) {
      // The whole file after a resume: minutes for a large one, which a stop must cut short.
      const actual = await writer.digest(partial.path, expected.algorithm, client.signal);
      if (actual.hex !== expected.hex) {
        throw new ContentMismatchError(
          `checksum mismatch: the message says ${formatChecksum(expected)}, the data received is ${formatChecksum(actual)}; nothing was saved`,
        );
      }
    }
    // A stop that came while the file was flushed and verified: nothing is saved (its chunks are kept).
    client.signal?.throwIfAborted();
    await partial.handle.close();
    try {
      await moveIntoPlace(partial.path, target, options.overwrite);
    } catch (error) {
      // The name taken during the download (a file there at the start was refused then): the whole
      // message is kept. Best effort: should the note fail, the chunks it already records stay.
      if (error instanceof TargetExistsError) await partial.keepAll(writer.bytes).catch(() => undefined);
      throw error;
    }
    const result: DownloadResult = {
      messageId: metadata.messageId ?? messageId,
      messageType: metadata.messageType ?? 'DATA',
      path: target,
      totalChunks,
      bytes: writer.bytes,
      checksum: expected,
      continuedAfter: kept.chunks,
    };
    await partial.finish();
    return result;
  } catch (failure) {
    progress?.stop();
    first.body.destroy();
    const error = await explained(client, messageId, dirname(target), failure);
    const kept = await partial?.abandon(worthKeeping(error));
    throw kept ? new DownloadIncompleteError(error, kept, totalChunks) : error;
  }
}

/**
 * A non-delivery report has no payload (its one chunk is empty): saved, as `receive` saves it,
 * as its description in JSON, by default `<ID>.json`; the same rules as a payload's decide
 * whether a file already there is replaced.
 */
async function saveReport(first: RawChunkDownload, options: DownloadOptions): Promise<DownloadResult> {
  first.body.destroy();
  const messageId = first.metadata.messageId ?? options.messageId;
  const target = await refuseTargetOf(first.metadata, options);
  await writeFileAtomically(target, messageDescriptionText(first.metadata, messageId, undefined), { replace: options.overwrite }).catch(
    (error: NodeJS.ErrnoException) => {
      throw error.code === 'EEXIST' ? new TargetExistsError(target, true) : error;
    },
  );
  await syncFolder(dirname(target));
  return { messageId, messageType: 'REPORT', path: target, totalChunks: 0, bytes: 0, checksum: undefined, continuedAfter: 0 };
}
