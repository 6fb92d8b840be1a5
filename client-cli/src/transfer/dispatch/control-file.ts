import type { Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
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

/** The file's control file, checked; none gives no fields. */
export async function readControl(folder: string, file: string): Promise<ControlFields> {
  const path = controlPath(folder, file);
  const info = await controlStats(folder, file);
  if (info === undefined) return {};
  // A named pipe would hold the pass (and the folder's lock) until something wrote to it.
  if (!info.isFile()) throw new RefusedFileError(`its control file ${file}${CONTROL_SUFFIX} is not a file`);
  if (info.size > MAX_CONTROL_BYTES) throw new RefusedFileError(`its control file ${file}${CONTROL_SUFFIX} is ${info.size} bytes: at most ${MAX_CONTROL_BYTES} are read`);
  const text = await readFile(path, 'utf8').catch(ignoreMissing);
  if (text === undefined) return {};
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
