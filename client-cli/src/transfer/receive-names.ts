import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { ignoreMissing } from './fs-errors.ts';
import { readMessageDescription } from './message-description.ts';
import { placedUnfinished } from './partial-download.ts';

/**
 * A file where `receive` would save a message that is not an earlier save of that message: the
 * server picks the id, and the id picks the names (`<ID>.json`, `<ID>_<file>`), so a server,
 * broken or hostile, could otherwise have receive replace any file there whose name it can make.
 */
export class UnrelatedFileError extends Error {
  readonly path: string;

  /** `appeared`: during the download (the name was free when it began). */
  constructor(messageId: string, path: string, appeared = false) {
    super(
      `${path} ${appeared ? 'appeared during the download' : 'is in the folder'} and is not meshbox's earlier save of message ${messageId}, ` +
        `so it is left as it is and the message is not saved: move that file away, and the next receive saves the message`,
    );
    this.name = 'UnrelatedFileError';
    this.path = path;
  }
}

/** Which of a message's names hold an earlier save of it, to be replaced (its acknowledgement was lost, or its run cut short). */
export interface OwnNames {
  readonly description: boolean;
  readonly payload: boolean;
}

/**
 * Checks the names a message is saved under (`<ID>.json`, and `payloadName` unless it is a
 * report) before anything is fetched: each must be free, or hold an earlier save of this
 * message. A description is its own when it is one of this message; a payload, when that
 * description names it, or when the save that put it there was cut short before writing the
 * description (placedUnfinished). Anything else there throws UnrelatedFileError.
 */
export async function checkOwnNames(folder: string, messageId: string, payloadName: string | undefined): Promise<OwnNames> {
  const descriptionPath = join(folder, `${messageId}.json`);
  const descriptionThere = (await lstat(descriptionPath).catch(ignoreMissing)) !== undefined;
  const description = descriptionThere ? await readMessageDescription(descriptionPath, messageId) : undefined;
  if (descriptionThere && description === undefined) throw new UnrelatedFileError(messageId, descriptionPath);
  if (payloadName === undefined) return { description: descriptionThere, payload: false };
  const payloadPath = join(folder, payloadName);
  if (!(await lstat(payloadPath).catch(ignoreMissing))) return { description: descriptionThere, payload: false };
  if (description?.payloadFile === payloadName || (await placedUnfinished(payloadPath, messageId))) return { description: descriptionThere, payload: true };
  throw new UnrelatedFileError(messageId, payloadPath);
}
