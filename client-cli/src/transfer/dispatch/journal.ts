import { createHash } from 'node:crypto';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { syncFolder, writeFileAtomically } from '../durable-files.ts';
import { ignoreMissing } from '../fs-errors.ts';
import { controlPath, controlStats } from './control-file.ts';
import { JOURNAL_FOLDER, SENT_FOLDER } from './layout.ts';

/**
 * What this program noted before sending a file, so that a run cut short (a crash, a stop, a
 * lost answer) finds its message again instead of sending it twice: kept in a hidden folder,
 * one per file, until the file is in `sent/`.
 */
export interface Journal {
  readonly file: string;
  /** The file as it was: a different file under the same name starts afresh. */
  readonly size: number;
  readonly mtimeMs: number;
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
  /** What a resumed upload must repeat. */
  readonly chunkSize: number;
  readonly gzip: boolean;
}

/** Named by a hash: a file's name may be as long as a name can be, leaving no room for a suffix. */
function journalPath(folder: string, file: string): string {
  return join(folder, JOURNAL_FOLDER, `${createHash('sha256').update(file).digest('hex').slice(0, 32)}.json`);
}

export async function readJournal(folder: string, file: string): Promise<Journal | undefined> {
  const text = await readFile(journalPath(folder, file), 'utf8').catch(ignoreMissing);
  const journal = text === undefined ? undefined : parseJournal(text);
  return journal?.file === file ? journal : undefined;
}

/** Undefined for what is not a journal of this program's (written atomically, so only a hand could spoil one). */
function parseJournal(text: string): Journal | undefined {
  try {
    const value = JSON.parse(text) as Partial<Journal>;
    const valid =
      typeof value.file === 'string' &&
      typeof value.size === 'number' &&
      typeof value.mtimeMs === 'number' &&
      typeof value.localId === 'string' &&
      (value.earlier === null || typeof value.earlier === 'string') &&
      typeof value.sentTo === 'string' &&
      typeof value.sentWorkflowId === 'string' &&
      typeof value.sentFileName === 'string' &&
      (value.messageId === null || typeof value.messageId === 'string') &&
      typeof value.chunkSize === 'number' &&
      typeof value.gzip === 'boolean';
    return valid ? (value as Journal) : undefined;
  } catch {
    return undefined;
  }
}

/** Done with: the file is in `sent/` or `failed/`. */
export async function removeJournal(folder: string, file: string): Promise<void> {
  await rm(journalPath(folder, file), { force: true });
}

export async function writeJournal(folder: string, journal: Journal): Promise<void> {
  await writeFileAtomically(journalPath(folder, journal.file), JSON.stringify(journal));
  await syncFolder(join(folder, JOURNAL_FOLDER));
}

/**
 * A journal whose file is no longer in the folder (sent, or taken away) must not meet a new
 * file of that name. A finish cut short between moving the file and removing its control file
 * leaves the control file behind; it goes too, but only then (its receipt is in `sent/`, and
 * the control file is no newer): one left by someone who took the file away to mend it stays.
 */
export async function removeStaleJournals(folder: string, present: readonly string[]): Promise<void> {
  const current = new Set(present.map((file) => journalPath(folder, file)));
  for (const name of await readdir(join(folder, JOURNAL_FOLDER))) {
    const path = join(folder, JOURNAL_FOLDER, name);
    if (current.has(path)) continue;
    const text = await readFile(path, 'utf8').catch(ignoreMissing);
    const journal = text === undefined ? undefined : parseJournal(text);
    const receipt = journal?.messageId ? await stat(join(folder, SENT_FOLDER, `${journal.messageId}.json`)).catch(ignoreMissing) : undefined;
    const control = journal && receipt ? await controlStats(folder, journal.file) : undefined;
    // Not one put in since for a new file of that name.
    if (journal && receipt && control && control.mtimeMs <= receipt.mtimeMs) await rm(controlPath(folder, journal.file), { force: true });
    await rm(path, { force: true });
  }
}
