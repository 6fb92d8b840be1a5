import type { Stats } from 'node:fs';

/**
 * What tells a file at a name from another put there, and from itself changed. Device and inode
 * are left out of one noted before this machine last started (see Journal): a share mounted anew
 * may number its files anew.
 */
export interface FileIdentity {
  readonly size: number;
  readonly mtimeMs: number;
  readonly ino?: number;
  readonly dev?: number;
}

/** The identity to note of a file (as JSON: not the whole of its stats). */
export function identityOf(info: Stats): Required<FileIdentity> {
  return { size: info.size, mtimeMs: info.mtimeMs, ino: info.ino, dev: info.dev };
}

/**
 * The same file, unchanged: the same size and time, and the same inode of the same device. A file
 * renamed into place is another, whatever its size and time (`rsync -a`, `cp -p` then `mv` keep
 * them). Device and inode are compared only where `then` has them.
 */
export function sameFile(now: FileIdentity, then: FileIdentity): boolean {
  return (
    now.size === then.size &&
    now.mtimeMs === then.mtimeMs &&
    (then.ino === undefined || now.ino === then.ino) &&
    (then.dev === undefined || now.dev === then.dev)
  );
}
