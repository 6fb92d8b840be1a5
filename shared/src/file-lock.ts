import { randomUUID } from 'node:crypto';
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';

/*
 * An exclusive lock file holding its owner's token. It is created complete in one step
 * (written aside, then hard-linked into place, which fails if the lock exists), so a reader
 * never sees it empty (where there are no hard links, it is created exclusively instead, and may
 * be read empty for a moment: its holder is then still writing it). A stale lock is broken by renaming it away and checking that what was
 * moved is the stale lock that was read: two callers finding the same stale lock cannot then
 * delete each other's fresh one. Whether a holder is stale is the caller's to judge.
 */

/** What link() fails with where a file system has no hard links (some SMB/CIFS and FAT mounts). */
export const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']);

/** Takes the lock if nobody holds it: true when taken. */
export async function tryLock(path: string, token: string): Promise<boolean> {
  const draft = `${path}.${process.pid}.${randomUUID()}`;
  // A write that fails part-way (a full disk) leaves a draft to remove too.
  await writeFile(draft, token).catch(async (error: unknown) => {
    await rm(draft, { force: true });
    throw error;
  });
  try {
    await link(draft, path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (code === 'EEXIST') return false;
    if (!NO_HARD_LINKS.has(code)) throw error;
    // No hard links (FAT/exFAT, many SMB mounts): an exclusive create, which a reader may see empty for a moment.
    return writeFile(path, token, { flag: 'wx' }).then(
      () => true,
      (failure: NodeJS.ErrnoException) => {
        if (failure.code === 'EEXIST') return false;
        throw failure;
      },
    );
  } finally {
    await rm(draft, { force: true });
  }
}

/** Who holds the lock (their token); undefined when nobody does. */
export async function lockHolder(path: string): Promise<string | undefined> {
  return readFile(path, 'utf8').catch(() => undefined);
}

/** Takes away a lock judged stale, `staleContent` being what was read from it. */
export async function breakStaleLock(path: string, staleContent: string): Promise<void> {
  const aside = `${path}.stale.${randomUUID()}`;
  try {
    await rename(path, aside);
  } catch {
    return; // somebody else broke or released it
  }
  const moved = await readFile(aside, 'utf8').catch(() => undefined);
  // Between our read and the rename, another caller broke the stale lock and took a fresh
  // one, which we just moved: put it back (fails only if a third caller got in meanwhile).
  if (moved !== undefined && moved !== staleContent) await link(aside, path).catch(() => {});
  await rm(aside, { force: true });
}

/** Removes the lock if it is still ours (it is, unless a breaker misjudged it). */
export async function releaseLock(path: string, token: string): Promise<void> {
  if ((await lockHolder(path)) === token) await rm(path, { force: true });
}
