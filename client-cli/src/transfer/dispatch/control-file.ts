import { constants, type Stats } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { type FileIdentity, identityOf, sameFile } from '../file-identity.ts';
import { ignoreMissing } from '../fs-errors.ts';
import { headerValue } from '../../client/header-values.ts';
import { RefusedFileError } from './errors.ts';

/** A file's own control file: `<file>.ctl.json`, with any of these fields. */
export const CONTROL_SUFFIX = '.ctl.json';

/** What a control file may say; anything it leaves out comes from the command line. */
export interface ControlFields {
  readonly to?: string;
  readonly workflowId?: string;
  readonly subject?: string;
  readonly localId?: string;
  readonly fileName?: string;
}

const CONTROL_KEYS: readonly (keyof ControlFields)[] = ['to', 'workflowId', 'subject', 'localId', 'fileName'];

export function controlPath(folder: string, file: string): string {
  return join(folder, `${file}${CONTROL_SUFFIX}`);
}

/** Undefined when the file has no control file (a name too long to take the suffix cannot have one). */
export async function controlStats(folder: string, file: string): Promise<Stats | undefined> {
  return stat(controlPath(folder, file)).catch((error: NodeJS.ErrnoException) => (error.code === 'ENAMETOOLONG' ? undefined : ignoreMissing(error)));
}

/** A control file holds a handful of short fields; anything larger is a mistake, not to be read whole. */
const MAX_CONTROL_BYTES = 64 * 1024;

/** Opening a named pipe waits for a writer: with this, it opens at once, and is then refused as not a file. */
const WITHOUT_WAITING = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/**
 * A file's control file, as its send read it. Only that one goes with the file (deleted once the
 * file is sent, moved with it into failed/): one put in since, while the file went, is the next
 * file of that name's, put in first as it must be, and stays for it.
 */
export class ControlFile {
  readonly #folder: string;
  readonly #file: string;
  /** The control file read: null when there was none; undefined when none was read (the file was refused first, or an earlier version's note). */
  #read: FileIdentity | null | undefined;

  constructor(folder: string, file: string) {
    this.#folder = folder;
    this.#file = file;
  }

  /** What was read, to note for a run that finishes this send after a crash. */
  get identityRead(): FileIdentity | null | undefined {
    return this.#read;
  }

  /** The control file an earlier run read for the send this one finishes (its note's). */
  readBefore(read: FileIdentity | null | undefined): void {
    this.#read = read;
  }

  /** Its fields, checked; none gives no fields. Read from what was opened, so that what was read is the file noted. */
  async read(): Promise<ControlFields> {
    const file = this.#file;
    const handle = await open(controlPath(this.#folder, file), WITHOUT_WAITING).catch((error: NodeJS.ErrnoException) => noControlFile(file, error));
    if (handle === undefined) {
      this.#read = null;
      return {};
    }
    try {
      const info = await handle.stat();
      this.#read = identityOf(info);
      if (!info.isFile()) throw notAFile(file);
      if (info.size > MAX_CONTROL_BYTES) throw new RefusedFileError(`its control file ${file}${CONTROL_SUFFIX} is ${info.size} bytes: at most ${MAX_CONTROL_BYTES} are read`);
      return parseControl(file, await handle.readFile('utf8'));
    } finally {
      await handle.close();
    }
  }

  /** Deleted with its file sent, if it is still the one read. */
  async remove(): Promise<void> {
    if (await this.#stillTheOneRead()) await rm(controlPath(this.#folder, this.#file), { force: true });
  }

  /** Moved beside its refused file, if it is still the one read. */
  async moveTo(path: string): Promise<void> {
    if (await this.#stillTheOneRead()) await rename(controlPath(this.#folder, this.#file), path).catch(ignoreMissing);
  }

  /** None read (the file refused before it was, an earlier version's note) leaves whichever is there its own, as before. */
  async #stillTheOneRead(): Promise<boolean> {
    const now = await controlStats(this.#folder, this.#file);
    if (now === undefined || this.#read === null) return false;
    return this.#read === undefined || sameFile(now, this.#read);
  }
}

function notAFile(file: string): RefusedFileError {
  return new RefusedFileError(`its control file ${file}${CONTROL_SUFFIX} is not a file`);
}

/** For `.catch()` on opening a control file: none there (or a name too long to take the suffix) is undefined; a folder (where the system will not open one) is refused. */
function noControlFile(file: string, error: NodeJS.ErrnoException): undefined {
  if (error.code === 'EISDIR') throw notAFile(file);
  return error.code === 'ENAMETOOLONG' ? undefined : ignoreMissing(error);
}

function parseControl(file: string, text: string): ControlFields {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new RefusedFileError(`its control file ${file}${CONTROL_SUFFIX} is not JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new RefusedFileError(`its control file ${file}${CONTROL_SUFFIX} must hold a JSON object`);
  }
  const control: Record<string, string> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (!(CONTROL_KEYS as readonly string[]).includes(key)) {
      throw new RefusedFileError(`its control file ${file}${CONTROL_SUFFIX} has an unknown field ${JSON.stringify(key)} (known: ${CONTROL_KEYS.join(', ')})`);
    }
    if (typeof value !== 'string' || value.trim() === '') {
      throw new RefusedFileError(`its control file ${file}${CONTROL_SUFFIX} gives ${key} as ${JSON.stringify(value)}: a non-empty string is needed`);
    }
    // As it goes out: what is recorded of the send, and looked for on the server after a lost answer, is what the server keeps.
    const sent = headerValue(value);
    if (sent === undefined) throw new RefusedFileError(`its control file ${file}${CONTROL_SUFFIX} gives a ${key} that cannot go as a MESH header (Latin-1 text on one line)`);
    control[key] = sent;
  }
  return control;
}
