import { randomUUID } from 'node:crypto';
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { processAlive, sleep } from './processes.ts';

/**
 * Runs `action` holding an exclusive lock file, so concurrent callers (ava runs test files
 * in parallel processes) never start two copies of a service.
 *
 * The lock file holds "<pid> <random token>". It is created complete in one step (written
 * aside, then hard-linked into place, which fails if the lock exists), so a reader never
 * sees it empty. A lock whose pid is dead (a crashed or killed caller) is broken by
 * renaming it away and checking that what was moved is the stale lock that was read: two
 * waiters finding the same stale lock cannot then delete each other's fresh one.
 */
export async function withFileLock<T>(path: string, action: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const token = `${process.pid} ${randomUUID()}`;
  const deadline = Date.now() + timeoutMs;
  while (!(await tryAcquire(path, token))) {
    const holder = await readFile(path, 'utf8').catch(() => undefined);
    if (holder === undefined) continue; // released meanwhile: try again at once
    if (!processAlive(Number(holder.split(' ')[0]))) {
      await breakStaleLock(path, holder, token);
      continue;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${path} (held by pid ${holder.split(' ')[0]})`);
    await sleep(50 + Math.random() * 100);
  }
  try {
    return await action();
  } finally {
    // Remove only our own lock (it is ours unless a breaker misjudged it, see breakStaleLock).
    if ((await readFile(path, 'utf8').catch(() => undefined)) === token) await rm(path, { force: true });
  }
}

async function tryAcquire(path: string, token: string): Promise<boolean> {
  const draft = `${path}.${process.pid}.${randomUUID()}`;
  await writeFile(draft, token);
  try {
    await link(draft, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    await rm(draft, { force: true });
  }
}

async function breakStaleLock(path: string, staleContent: string, token: string): Promise<void> {
  const aside = `${path}.stale.${token.replace(' ', '.')}`;
  try {
    await rename(path, aside);
  } catch {
    return; // somebody else broke or released it
  }
  const moved = await readFile(aside, 'utf8').catch(() => undefined);
  // Between our read and the rename, another waiter broke the stale lock and took a fresh
  // one, which we just moved: put it back (fails only if a third caller got in meanwhile).
  if (moved !== undefined && moved !== staleContent) await link(aside, path).catch(() => {});
  await rm(aside, { force: true });
}
