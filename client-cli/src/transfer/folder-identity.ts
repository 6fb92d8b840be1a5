import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';

/** Throws FolderChangedError when the folder is no longer the one there when the command began. */
export type SameFolderCheck = () => Promise<void>;

/** The folder of a run is gone or another: a pass stops at once, whatever it was doing. */
export class FolderChangedError extends Error {
  override name = 'FolderChangedError';
}

/**
 * A check for each pass of a long run, and for each message a receive saves and acknowledges: a
 * share unmounted under it (mid-pass too) leaves the folder it was mounted on, on the local disk,
 * where a receiver would save, and acknowledge, messages that whoever reads the share never sees.
 * Told apart by device and inode, which a mount changes, from `first`, what the folder was at start.
 */
export function sameFolderCheck(path: string, first: Stats): SameFolderCheck {
  return async () => {
    const now = await stat(path).catch(() => undefined);
    if (now?.dev === first.dev && now.ino === first.ino) return;
    const what = now ? 'no longer the folder this run began with (a share unmounted, or mounted anew?)' : 'gone';
    throw new FolderChangedError(`${path} is ${what}: nothing is done in it until it is back; to use what is there now, start the command again`);
  };
}
