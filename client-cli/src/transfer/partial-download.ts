import { createHash } from 'node:crypto';
import { constants, type FileHandle, open, readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomically } from './durable-files.ts';
import { NO_LINK_NO_WAIT, readPlainJsonFile } from './plain-json-file.ts';
import { lockFolder } from './folder-lock.ts';

/*
 * A download is written into a partial file beside its target, named after the message and the
 * target; one of several chunks, with a note of how many whole chunks it holds. A run cut short
 * (the network gone past its retries, a stop, a kill, a power cut) is continued by the next
 * from the chunk after: a message of many gigabytes is not fetched again from the start. One
 * whose target was taken during the download (seen as it is moved into place) keeps them all, to
 * be saved without fetching them again.
 */

/** What is being downloaded where: a later run continues a partial file only for the same. */
export interface DownloadOf {
  readonly messageId: string;
  readonly target: string;
  readonly totalChunks: number;
  /** The message's mex-Content-Checksum as the server gave it ('' when none). */
  readonly checksum: string;
}

/** The first `chunks` chunks, `bytes` once decoded, are in the partial file. */
export interface KeptChunks {
  readonly chunks: number;
  readonly bytes: number;
}

/** The file a download writes before it is moved to its target. */
export interface PartialFile {
  readonly path: string;
  readonly handle: FileHandle;
  /** What an earlier run left, to continue from (0 chunks: a fresh start; all of them: only to verify and save). */
  readonly kept: KeptChunks;
  /** Records that the file holds these chunks, once they are on disk. */
  keep(kept: KeptChunks): Promise<void>;
  /**
   * Records that the file, flushed and closed, holds every chunk (`bytes` in all): it was whole
   * and verified, but could not be moved into place. A later run then saves it without fetching
   * the chunks again. Nothing for a message of one chunk.
   */
  keepAll(bytes: number): Promise<void>;
  /** After the file was put at its target: nothing of the download is left. */
  finish(): Promise<void>;
  /**
   * After a failure: what was recorded stays for a later run when `keepChunks` (returned; undefined
   * when nothing was), else everything goes.
   */
  abandon(keepChunks: boolean): Promise<KeptChunks | undefined>;
}

const NOTHING: KeptChunks = { chunks: 0, bytes: 0 };

/**
 * Opens the file to download into, beside the target, under a name of the message and the
 * target. A message of one chunk has nothing to continue: the file starts afresh, in place of
 * whatever a run killed before it left. One of several continues what an earlier run kept, if
 * its note matches this message, target and file; else it starts afresh. Two runs downloading
 * the same message to the same target would write one file: the second is refused.
 */
export async function openPartialFile(download: DownloadOf): Promise<PartialFile> {
  const names = continuableNames(download.target, download.messageId);
  const unlock = await lockFolder(dirname(download.target), {
    lockFile: names.lock,
    worker: 'download',
    busy: (holder) => `${holder} is downloading message ${download.messageId} to ${download.target}: wait for it to end`,
  });
  try {
    return download.totalChunks <= 1 ? await openOneChunk(download.target, names, unlock) : await openContinuable(download, names, unlock);
  } catch (error) {
    await unlock();
    throw error;
  }
}

async function openOneChunk(target: string, names: ContinuableNames, unlock: () => Promise<void>): Promise<PartialFile> {
  const { partial: path, note } = continuablePaths(target, names);
  // A note would be of this download with more chunks: a message id the server reused, or a hand-made one.
  await rm(note, { force: true });
  await rm(path, { force: true });
  const handle = await open(path, 'wx');
  return {
    path,
    handle,
    kept: NOTHING,
    keep: async () => undefined,
    keepAll: async () => undefined,
    finish: async () => {
      try {
        await rm(path, { force: true });
      } finally {
        await unlock();
      }
    },
    abandon: async () => {
      await handle.close().catch(() => undefined);
      await rm(path, { force: true }).catch(() => undefined);
      await unlock();
      return undefined;
    },
  };
}

interface ContinuableNames {
  /** The partial file: a temporary file of the target (`temporaryFilesIn` finds it). */
  readonly partial: string;
  /** The note of the chunks it holds, and the lock: short names, whatever the target's length. */
  readonly note: string;
  readonly lock: string;
}

/** The names, in the target's folder, of the partial download of `messageId` to `target`. */
export function continuableNames(target: string, messageId: string): ContinuableNames {
  const key = createHash('sha256').update(`${messageId.toUpperCase()}\n${basename(target)}`).digest('hex').slice(0, 8);
  return { partial: `.${basename(target)}.${key}.part`, note: `.meshbox-download-${key}.chunks`, lock: `.meshbox-download-${key}.lock` };
}

/** Where the partial file and its note are: beside the target. */
function continuablePaths(target: string, names: ContinuableNames): { readonly partial: string; readonly note: string } {
  const folder = dirname(target);
  return { partial: join(folder, names.partial), note: join(folder, names.note) };
}

interface Note extends KeptChunks {
  readonly messageId: string;
  readonly target: string;
  readonly totalChunks: number;
  readonly checksum: string;
}

async function openContinuable(download: DownloadOf, names: ContinuableNames, unlock: () => Promise<void>): Promise<PartialFile> {
  const { partial: path, note: notePath } = continuablePaths(download.target, names);
  const kept = await readKept(download, path, notePath);
  let handle: FileHandle;
  if (kept) {
    // The file of the note, not a link put in its place: it is written to.
    handle = await open(path, constants.O_RDWR | constants.O_NOFOLLOW);
    await handle.truncate(kept.bytes).catch(async (error: unknown) => {
      await handle.close();
      throw error;
    });
  } else {
    await rm(notePath, { force: true });
    await rm(path, { force: true });
    handle = await open(path, 'wx');
  }
  let recorded = kept;
  const removeAll = async () => {
    await rm(notePath, { force: true });
    await rm(path, { force: true });
  };
  const record = async (chunks: KeptChunks) => {
    const note: Note = { messageId: download.messageId, target: basename(download.target), totalChunks: download.totalChunks, checksum: download.checksum, ...chunks };
    await writeFileAtomically(notePath, `${JSON.stringify(note)}\n`);
    recorded = chunks;
  };
  return {
    path,
    handle,
    kept: kept ?? NOTHING,
    keep: async (chunks) => {
      // The data first: a note must never claim chunks a power cut could take back.
      await handle.datasync();
      await record(chunks);
    },
    // The file was flushed before it was verified.
    keepAll: (bytes) => record({ chunks: download.totalChunks, bytes }),
    finish: async () => {
      try {
        await removeAll();
      } finally {
        await unlock();
      }
    },
    abandon: async (keepChunks) => {
      await handle.close().catch(() => undefined);
      const left = keepChunks ? recorded : undefined;
      // Best effort (a file held open by a scanner on Windows): the next run's fresh start removes what is left;
      // the lock goes in any case, and the failure that brought us here is the one reported.
      if (!left) await removeAll().catch(() => undefined);
      await unlock();
      return left;
    },
  };
}

/**
 * Whether an earlier run kept the whole of this download (a file took its target during it): the same download with `overwrite` saves it without fetching it again. Only read: no lock.
 */
export async function keptWhole(download: DownloadOf): Promise<boolean> {
  if (download.totalChunks <= 1) return false;
  const paths = continuablePaths(download.target, continuableNames(download.target, download.messageId));
  const kept = await readKept(download, paths.partial, paths.note).catch(() => undefined);
  return kept?.chunks === download.totalChunks;
}

/** What the note says the file holds, if it is about this download and the file holds that much. */
async function readKept(download: DownloadOf, path: string, notePath: string): Promise<KeptChunks | undefined> {
  const note = await readNote(notePath);
  if (note === undefined) return undefined;
  const { chunks, bytes } = note;
  const matches =
    typeof note.messageId === 'string' &&
    note.messageId.toUpperCase() === download.messageId.toUpperCase() &&
    note.target === basename(download.target) &&
    note.totalChunks === download.totalChunks &&
    note.checksum === download.checksum &&
    Number.isSafeInteger(chunks) &&
    chunks! >= 1 &&
    chunks! <= download.totalChunks &&
    Number.isSafeInteger(bytes) &&
    bytes! >= 0;
  if (!matches) return undefined;
  const size = await fileSize(path);
  return size !== undefined && size >= bytes! ? { chunks: chunks!, bytes: bytes! } : undefined;
}

const MAX_NOTE_BYTES = 64 * 1024;

/** The note at `notePath`, if it is a plain file of ours (not a FIFO, a device, a link). */
async function readNote(notePath: string): Promise<Partial<Note> | undefined> {
  return (await readPlainJsonFile(notePath, MAX_NOTE_BYTES)) as Partial<Note> | undefined;
}

async function fileSize(path: string): Promise<number | undefined> {
  const handle = await open(path, NO_LINK_NO_WAIT).catch(() => undefined);
  if (!handle) return undefined;
  try {
    const stats = await handle.stat();
    // One name only: a second (the target, after a crash between putting it in place and finishing) must not be written into.
    return stats.isFile() && stats.nlink === 1 ? stats.size : undefined;
  } finally {
    await handle.close();
  }
}

const NOTE_NAME = /^\.meshbox-download-[0-9a-f]{8}\.chunks$/;

/** Each progress note among the folder's `names` that can be read, with its name. */
async function* notesIn(folder: string, names: readonly string[]): AsyncGenerator<{ readonly name: string; readonly note: Partial<Note> }> {
  for (const name of names) {
    if (!NOTE_NAME.test(name)) continue;
    const note = await readNote(join(folder, name));
    if (note) yield { name, note };
  }
}

/** The messages that notes in `folder` say earlier runs kept chunks of; `names`: the folder's, as `readdir` gives them. */
export async function partialDownloadsIn(folder: string, names: readonly string[]): Promise<string[]> {
  const ids = new Set<string>();
  for await (const { note } of notesIn(folder, names)) if (typeof note.messageId === 'string') ids.add(note.messageId);
  return [...ids];
}

/**
 * Removes what earlier runs kept of `messageId` in `folder`: the message is gone (acknowledged
 * elsewhere, expired), nothing can continue it. Only our own names (the partial file's is derived
 * from the note, never taken from it), and not while a download of it holds its lock.
 */
export async function discardPartialsOf(folder: string, messageId: string): Promise<void> {
  for await (const { name, note } of notesIn(folder, await readdir(folder).catch(() => [] as string[]))) {
    if (typeof note.messageId !== 'string' || note.messageId.toUpperCase() !== messageId.toUpperCase()) continue;
    if (typeof note.target !== 'string' || note.target === '' || basename(note.target) !== note.target) continue;
    const target = join(folder, note.target);
    const own = continuableNames(target, messageId);
    if (own.note !== name) continue;
    const unlock = await lockFolder(folder, { lockFile: own.lock, worker: 'download' }).catch(() => undefined);
    if (!unlock) continue;
    try {
      const paths = continuablePaths(target, own);
      await rm(paths.note, { force: true });
      await rm(paths.partial, { force: true });
    } finally {
      await unlock();
    }
  }
}
