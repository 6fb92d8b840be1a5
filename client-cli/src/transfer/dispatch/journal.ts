import { createHash } from 'node:crypto';
import { readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type BootMoment, msSinceBootMoment } from '../../../../shared/src/processes.ts';
import { syncFolder, writeFileAtomically } from '../durable-files.ts';
import { type FileIdentity, sameFile } from '../file-identity.ts';
import { ignoreMissing } from '../fs-errors.ts';
import { controlPath, controlStats } from './control-file.ts';
import { JOURNAL_FOLDER } from './layout.ts';

/**
 * What this program noted before sending a file, so that a run cut short (a crash, a stop, a
 * lost answer) finds its message again instead of sending it twice: kept in a hidden folder,
 * one per file, until the file is in `sent/`.
 */
export interface Journal {
  readonly file: string;
  /**
   * The file as it was: a different file under the same name starts afresh, whatever its size and
   * time (see sameFile). Device and inode are dropped as the note is read after a restart of the
   * machine (a share mounted anew may number its files anew), and a note of an earlier version has none.
   */
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino?: number;
  readonly dev?: number;
  /**
   * The control file the send was addressed by (null: none), the one a run finishing the send
   * deletes or moves with the file: not one put in since for the next file of that name.
   * Undefined in a note of an earlier version.
   */
  readonly control?: FileIdentity | null;
  readonly localId: string;
  /**
   * A message sent before under the same (control file's) local id, found before this send: a
   * lookup that finds only it has not found this send. 'several' when more than one was.
   */
  readonly earlier: string | 'several' | null;
  /** What the message was sent with: a message found by the local id that says otherwise is another file's. */
  readonly sentTo: string;
  readonly sentWorkflowId: string;
  readonly sentFileName: string;
  /** Known once chunk 1 is stored (at once for a message of several chunks; with the answer for one chunk). */
  readonly messageId: string | null;
  /**
   * When chunk 1 went, while its outcome is unknown (the run cut short, or only the answer
   * lost): a server may record a request up to its request timeout later. Null once the send
   * surely failed (refused, or never reached the server).
   */
  readonly attemptedAt: number | null;
  /**
   * The same moment on the machine's monotonic clock, which tells the time since the attempt
   * however the wall clock was set meanwhile (an hour's correction either way would otherwise
   * send the file again while its first try may still be on its way, or hold it an hour too
   * long). Null where there is none (not Linux), or in a journal of an earlier version.
   */
  readonly attemptedOnBoot: BootMoment | null;
  /** What a resumed upload must repeat. */
  readonly chunkSize: number;
  readonly gzip: boolean;
}

/** Named by a hash: a file's name may be as long as a name can be, leaving no room for a suffix. */
function journalPath(folder: string, file: string): string {
  return join(folder, JOURNAL_FOLDER, `${fileHash(file)}.json`);
}

function fileHash(file: string): string {
  return createHash('sha256').update(file).digest('hex').slice(0, 32);
}

/**
 * Noted before a file and its control file are moved out of the outbox (into `sent/`, or into
 * `failed/`): a run cut short between the two moves leaves the control file behind, and the
 * next file of that name would go with it (to the other file's recipient). The next pass
 * finishes the move from this note.
 */
export interface MoveNote {
  readonly file: string;
  /** The file as it was: one of that name found in the folder later, not like this, is a new file. */
  readonly size: number;
  readonly mtimeMs: number;
  /** Where the control file goes: beside the file in `failed/`; null: it is removed (the file was sent). */
  readonly controlTo: string | null;
  /** The control file read for the send (null: none; undefined: none read, or a note of an earlier version: judged by `at`). */
  readonly control?: FileIdentity | null;
  readonly at: number;
}

const MOVE_NOTE_SUFFIX = '.moving.json';

/**
 * Journals and notes name a file and its local id (a patient's number, often): not for every
 * local user, whatever the umask; the group's (a team of operators, a dispatcher run by hand as
 * another of its users), as the umask allows.
 */
const OWN_FILE = { mode: 0o660 } as const;

function moveNotePath(folder: string, file: string): string {
  return join(folder, JOURNAL_FOLDER, `${fileHash(file)}${MOVE_NOTE_SUFFIX}`);
}

export async function noteMove(folder: string, note: Omit<MoveNote, 'at'>): Promise<void> {
  await writeFileAtomically(moveNotePath(folder, note.file), JSON.stringify({ ...note, at: Date.now() }), OWN_FILE);
  await syncFolder(join(folder, JOURNAL_FOLDER));
}

/** Done with: the file is in `sent/` or `failed/`, and its control file with it or gone. */
export async function removeMoveNote(folder: string, file: string): Promise<void> {
  await rm(moveNotePath(folder, file), { force: true });
}

function parseMoveNote(text: string): MoveNote | undefined {
  try {
    const value = JSON.parse(text) as Partial<MoveNote>;
    const valid =
      typeof value.file === 'string' &&
      typeof value.size === 'number' &&
      typeof value.mtimeMs === 'number' &&
      (value.controlTo === null || typeof value.controlTo === 'string') &&
      (value.control === undefined || value.control === null || isFileIdentity(value.control)) &&
      typeof value.at === 'number';
    return valid ? (value as MoveNote) : undefined;
  } catch {
    return undefined;
  }
}

export async function readJournal(folder: string, file: string): Promise<Journal | undefined> {
  const text = await readFile(journalPath(folder, file), 'utf8').catch(ignoreMissing);
  const journal = text === undefined ? undefined : parseJournal(text);
  if (journal?.file !== file) return undefined;
  // Device and inode noted on another boot (or where there is no boot id to tell) may no longer be the file's: size and time alone tell it then.
  if (msSinceBootMoment(journal.attemptedOnBoot) !== undefined) return journal;
  const { control } = journal;
  return { ...journal, ino: undefined, dev: undefined, control: control && { size: control.size, mtimeMs: control.mtimeMs } };
}

/** Undefined for what is not a journal of this program's (written atomically, so only a hand could spoil one). */
function parseJournal(text: string): Journal | undefined {
  try {
    const value = JSON.parse(text) as Partial<Journal>;
    const valid =
      typeof value.file === 'string' &&
      typeof value.size === 'number' &&
      typeof value.mtimeMs === 'number' &&
      (value.ino === undefined || typeof value.ino === 'number') &&
      (value.dev === undefined || typeof value.dev === 'number') &&
      (value.control === undefined || value.control === null || isFileIdentity(value.control)) &&
      typeof value.localId === 'string' &&
      (value.earlier === null || typeof value.earlier === 'string') &&
      typeof value.sentTo === 'string' &&
      typeof value.sentWorkflowId === 'string' &&
      typeof value.sentFileName === 'string' &&
      (value.messageId === null || typeof value.messageId === 'string') &&
      // Journals of an earlier version have none: read as that version did (no wait).
      (value.attemptedAt === undefined || value.attemptedAt === null || typeof value.attemptedAt === 'number') &&
      (value.attemptedOnBoot === undefined || value.attemptedOnBoot === null || isBootMoment(value.attemptedOnBoot)) &&
      typeof value.chunkSize === 'number' &&
      typeof value.gzip === 'boolean';
    return valid ? ({ ...value, attemptedAt: value.attemptedAt ?? null, attemptedOnBoot: value.attemptedOnBoot ?? null } as Journal) : undefined;
  } catch {
    return undefined;
  }
}

function isFileIdentity(value: unknown): value is FileIdentity {
  const identity = value as Partial<FileIdentity>;
  return (
    typeof value === 'object' &&
    typeof identity.size === 'number' &&
    typeof identity.mtimeMs === 'number' &&
    (identity.ino === undefined || typeof identity.ino === 'number') &&
    (identity.dev === undefined || typeof identity.dev === 'number')
  );
}

function isBootMoment(value: unknown): value is BootMoment {
  const moment = value as Partial<BootMoment>;
  return typeof value === 'object' && typeof moment.bootId === 'string' && typeof moment.sinceBootMs === 'number';
}

/** Done with: the file is in `sent/` or `failed/`. */
export async function removeJournal(folder: string, file: string): Promise<void> {
  await rm(journalPath(folder, file), { force: true });
}

export async function writeJournal(folder: string, journal: Journal): Promise<void> {
  await writeFileAtomically(journalPath(folder, journal.file), JSON.stringify(journal), OWN_FILE);
  await syncFolder(join(folder, JOURNAL_FOLDER));
}

/**
 * Notes whose file is no longer in the folder (sent, refused, or taken away) must not meet a
 * new file of that name. A move cut short between the file and its control file (noted before
 * it began) is finished: the control file goes where the note says, but only one no newer
 * than the note (not one put in since for a new file of that name), and only once its file
 * has gone (one left by someone who took the file away to mend it stays with no note).
 */
export async function removeStaleJournals(folder: string, present: readonly string[]): Promise<void> {
  const current = new Set(present.map((file) => journalPath(folder, file)));
  for (const name of await readdir(join(folder, JOURNAL_FOLDER))) {
    const path = join(folder, JOURNAL_FOLDER, name);
    if (name.endsWith(MOVE_NOTE_SUFFIX)) {
      const text = await readFile(path, 'utf8').catch(ignoreMissing);
      const note = text === undefined ? undefined : parseMoveNote(text);
      // Its file still here as it was: the move had not begun, and this pass makes it again.
      const still = note ? await stat(join(folder, note.file)).catch(ignoreMissing) : undefined;
      if (still && still.size === note!.size && still.mtimeMs === note!.mtimeMs) continue;
      if (note) await finishControlMove(folder, note);
    } else if (current.has(path)) {
      continue;
    }
    await rm(path, { force: true });
  }
}

async function finishControlMove(folder: string, note: MoveNote): Promise<void> {
  const control = await controlStats(folder, note.file);
  if (!control) return;
  if (note.control === null) return;
  // Size and time (not the inode: the machine may have restarted since) of the one read, not this machine's clock, which a share's may not match.
  if (note.control !== undefined ? !sameFile(control, { size: note.control.size, mtimeMs: note.control.mtimeMs }) : control.mtimeMs > note.at) return;
  if (note.controlTo === null) await rm(controlPath(folder, note.file), { force: true });
  else await rename(controlPath(folder, note.file), note.controlTo).catch(ignoreMissing);
  await syncFolder(folder);
}
