import { randomBytes } from 'node:crypto';
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ignoreMissing } from '../fs-errors.ts';
import { FolderLockedError } from './errors.ts';

export const LOCK_FILE = '.meshbox-dispatch.lock';
const THIS_HOST = hostname();
/** Locks this process holds, so that a lock naming our own pid is known for ours or for a stale one (a container's pid 1 restarted). */
const heldLocks = new Set<string>();

/**
 * Makes sure only this process works on the folder; returns the release. The lock names its
 * host and process. One left by a process of this host that is gone is taken over; one of
 * another host (a shared folder) cannot be judged from here, so it holds until a person removes it.
 */
export async function lockFolder(folder: string): Promise<() => Promise<void>> {
  const path = join(folder, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt += 1) {
    // Written whole under a name of its own, then linked into place: a rival never reads a lock half-written.
    const candidate = `${path}.${process.pid}-${randomBytes(4).toString('hex')}`;
    await writeFile(candidate, `${THIS_HOST} ${process.pid}`, { flag: 'wx' });
    try {
      await link(candidate, path);
      heldLocks.add(path);
      return async () => {
        heldLocks.delete(path);
        await rm(path, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      await rm(candidate, { force: true });
    }
    const held = await readFile(path, 'utf8').catch(ignoreMissing);
    if (held !== undefined && isLive(held, path)) {
      throw new FolderLockedError(
        `another dispatcher (${held.trim()}, host and process) is working on ${folder}: run one per folder ` +
          `(remove ${path} if no dispatcher of that host and process is running)`,
      );
    }
    if (held !== undefined) await moveAsideIfStill(path, held);
  }
  throw new FolderLockedError(`cannot lock ${folder}: ${path} keeps coming back`);
}

function isLive(held: string, path: string): boolean {
  const match = /^(\S+) (\d+)$/.exec(held.trim());
  // Not in our form (only a hand writes one so): nothing to honour.
  if (!match) return false;
  const [, host, pid] = match;
  if (host !== THIS_HOST) return true;
  return Number(pid) === process.pid ? heldLocks.has(path) : processAlive(Number(pid));
}

/**
 * Takes a stale lock away: moved aside under a name of its own (never removed by its shared
 * name, which a rival may have just taken over), and put back if what moved was a rival's new lock.
 */
async function moveAsideIfStill(path: string, stale: string): Promise<void> {
  const aside = `${path}.stale-${randomBytes(4).toString('hex')}`;
  const moved = await rename(path, aside).then(
    () => true,
    (error: NodeJS.ErrnoException) => ignoreMissing(error) ?? false,
  );
  if (!moved) return;
  if ((await readFile(aside, 'utf8')) !== stale) await link(aside, path).catch(() => undefined);
  await rm(aside, { force: true });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
