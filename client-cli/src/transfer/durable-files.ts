import { randomBytes } from 'node:crypto';
import { constants, copyFile, link, lstat, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { NO_HARD_LINKS } from '../../../shared/src/file-lock.ts';

/**
 * Where a file is written before it is renamed to `target`: beside it, hidden (a program
 * watching the folder skips it), unique.
 */
export function temporaryPathBeside(target: string): string {
  return join(dirname(target), `.${basename(target)}.${randomBytes(4).toString('hex')}.part`);
}

/**
 * The temporary files (`temporaryPathBeside`'s names) in a folder: for a caller holding the
 * folder's lock, none is being written, so they are what writes cut short by a crash (a kill, a
 * power cut) left; hidden, they would fill the disk unseen.
 */
export async function temporaryFilesIn(folder: string): Promise<string[]> {
  return temporaryNames(await readdir(folder));
}

/** Which of a folder's names (as `readdir` gives them) are `temporaryPathBeside`'s. */
export function temporaryNames(names: readonly string[]): string[] {
  return names.filter((name) => /^\..+\.[0-9a-f]{8}\.part$/.test(name));
}

/** Whether `name`, one of `temporaryFilesIn`, was the temporary file of `target`. */
export function isTemporaryOf(name: string, target: string): boolean {
  return name.slice(1, -'.01234567.part'.length) === target;
}

/** Deletes temporary files a crash left in the folder (names from `temporaryFilesIn`). */
export async function removeLeftoverTemporaries(folder: string, names: readonly string[]): Promise<void> {
  for (const name of names) await rm(join(folder, name), { force: true });
}

export interface AtomicWriteOptions {
  /** File mode of the new file (0o600 for a private key). */
  readonly mode?: number;
  /** false: refuse (EEXIST) when anything is at the path already, a file or a link. */
  readonly replace?: boolean;
  /** The owner to give the new file, where this process may (as root): a file's, for what is written about it. */
  readonly owner?: { readonly uid: number; readonly gid: number };
}

/**
 * Writes a whole file under a hidden temporary name, flushes it and moves it into place: a
 * reader never sees it half written, and a link already at the path is replaced, never
 * followed (a key written through one would land where its maker chose).
 */
export async function writeFileAtomically(path: string, text: string, options: AtomicWriteOptions = {}): Promise<void> {
  const temporary = temporaryPathBeside(path);
  const handle = await open(temporary, 'wx', options.mode ?? 0o666);
  try {
    await handle.writeFile(text);
    // Not ours to give (not root), or a file system without owners: it stays this process's.
    if (options.owner) await handle.chown(options.owner.uid, options.owner.gid).catch(() => undefined);
    await handle.sync();
    await handle.close();
    await (options.replace === false ? placeWithoutReplacing(temporary, path) : rename(temporary, path));
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw error;
  } finally {
    await rm(temporary, { force: true });
  }
}

/**
 * Gives the finished file at `from` the name `to`, failing with EEXIST when anything (a file, a
 * link) is there, where a rename would replace it: a hard link, `from` keeping its name. Where
 * there are no hard links (FAT, many SMB mounts), a copy that will not replace a file either,
 * though a reader may then see `to` before it is whole; the copy is flushed, as `from` was, so
 * that what is acknowledged once it is placed outlives a power cut.
 */
export async function placeWithoutReplacing(from: string, to: string): Promise<void> {
  await link(from, to).catch(async (error: NodeJS.ErrnoException) => {
    if (!NO_HARD_LINKS.has(error.code ?? '')) throw error;
    await copyFile(from, to, constants.COPYFILE_EXCL);
    const copy = await open(to, 'r+');
    try {
      await copy.sync();
    } finally {
      await copy.close();
    }
  });
}

/**
 * Renames are durable only once their folder is flushed: after a power cut the files must be
 * where the server was told they are. (Windows cannot open a folder to flush it; NTFS
 * journals the rename itself.) A file system that cannot flush a folder at all (some network
 * and FUSE mounts refuse with EINVAL or EBADF, as PostgreSQL also allows for) makes renames as
 * durable as it can: failing there would have every message received again at every pass,
 * never acknowledged.
 */
export async function syncFolder(folder: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(folder, 'r');
  try {
    await handle.sync().catch((error: NodeJS.ErrnoException) => {
      if (!FOLDER_SYNC_UNSUPPORTED.has(error.code ?? '')) throw error;
    });
  } finally {
    await handle.close();
  }
}

const FOLDER_SYNC_UNSUPPORTED = new Set(['EINVAL', 'EBADF']);

/**
 * Refuses before anything is done when a file (or a link) is where one of `paths` is to be
 * written: a key replaced unasked is a certificate that stops working, and a file planted there
 * by someone else would receive the key. `advice` says what to do instead.
 */
export async function refuseExistingFiles(paths: readonly string[], advice: string): Promise<void> {
  for (const path of paths) {
    if (await lstat(path).then(() => true, () => false)) throw new Error(`${path} exists already and is left as it is: ${advice}`);
  }
}
