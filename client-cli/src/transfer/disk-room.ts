import { statfs } from 'node:fs/promises';
import { formatBytes } from './chunking.ts';

/**
 * What a download leaves free on its disk unless told otherwise. A message's size is not known
 * before it is saved: a gzipped chunk may unzip to a thousand times its size (a sender's zip bomb
 * could otherwise fill the disk the receiving system, its logs and its database live on).
 */
export const DEFAULT_MIN_FREE_BYTES = 1024 ** 3;

/** A download stopped before it left its disk with less free space than asked. */
export class DiskSpaceError extends Error {
  constructor(folder: string, minFree: number, free: number) {
    super(
      `saving the message would leave less than ${formatBytes(minFree)} free on the disk of ${folder} (${formatBytes(free)} free): ` +
        'nothing of it is kept; make room, or lower --min-free',
    );
    this.name = 'DiskSpaceError';
  }
}

/** A download whose disk filled up as it wrote (another writer, a quota, `--min-free 0`). */
export class DiskFullError extends Error {
  constructor(folder: string, cause: NodeJS.ErrnoException) {
    super(`the disk of ${folder} is full (${cause.code}): nothing of the message is kept; make room, then run the command again`, { cause });
    this.name = 'DiskFullError';
  }
}

/** A write refused for want of room: no space left, or a quota reached. */
export function isDiskFull(error: unknown): error is NodeJS.ErrnoException {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** Refuses `bytes` more written into `folder` when that would leave less than `minFree` free on its disk (0: no check). */
export async function ensureRoom(folder: string, bytes: number, minFree: number): Promise<void> {
  if (minFree === 0) return;
  const { bavail, bsize } = await statfs(folder);
  const free = bavail * bsize;
  if (free - bytes < minFree) throw new DiskSpaceError(folder, minFree, free);
}
