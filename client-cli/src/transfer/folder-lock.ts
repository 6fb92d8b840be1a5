import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { breakStaleLock, lockHolder, releaseLock, tryLock } from '../../../shared/src/file-lock.ts';
import { processAlive, processIdentity } from '../../../shared/src/processes.ts';

/** What works on a folder: its lock file there, and what the refusal calls another holder ('dispatcher'). */
export interface FolderWork {
  readonly lockFile: string;
  readonly worker: string;
  /** What the refusal says the holder (`another <worker> (<host> <pid>, host and process)`) is doing; by default, working on the folder. */
  readonly busy?: (holder: string) => string;
}

/** Another process is working on the folder. */
export class FolderLockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FolderLockedError';
  }
}

const THIS_HOST = hostname();
/** Locks this process holds, so that a lock naming our own pid is known for ours or for a stale one (a container's pid 1 restarted). */
const heldLocks = new Set<string>();

/**
 * Makes sure only this process does `work` on the folder; returns the release. The lock names
 * its host and process. One left by a process of this host that is gone is taken over; one of
 * another host (a shared folder) cannot be judged from here, so it holds until a person removes it.
 */
export async function lockFolder(folder: string, work: FolderWork): Promise<FolderLock> {
  const path = join(folder, work.lockFile);
  // The identity joined to the token: a dispatcher of the previous version reads three fields.
  const token = `${THIS_HOST} ${process.pid} ${randomUUID()}/${processIdentity(process.pid) ?? '-'}`;
  let tookOver = false;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    if (await tryLock(path, token).catch(refuseUnwritable(folder, work))) {
      heldLocks.add(path);
      const release = async (): Promise<void> => {
        heldLocks.delete(path);
        await releaseLock(path, token);
      };
      return Object.assign(release, { tookOver });
    }
    const held = await lockHolder(path);
    if (held === undefined) continue;
    // Being written (created without a hard link, where there are none): its holder is at work.
    if (held === '') {
      await sleep(50);
      continue;
    }
    const holder = holderOf(held);
    if (holder && isLive(holder, path)) {
      const who = `another ${work.worker} (${holder.host} ${holder.pid}, host and process)`;
      const busy = work.busy?.(who) ?? `${who} is working on ${folder}: run one per folder`;
      throw new FolderLockedError(`${busy} (remove ${path} if no ${work.worker} of that host and process is running)`);
    }
    await breakStaleLock(path, held);
    tookOver = true;
  }
  throw new FolderLockedError(`cannot lock ${folder}: ${path} keeps coming back`);
}

/** A folder's lock, held: called, it is released. */
export interface FolderLock {
  (): Promise<void>;
  /** Taken over from a holder gone (killed, crashed): what it was doing may be left in the folder. */
  readonly tookOver: boolean;
}

/** Why a folder refuses a file to be made in it, as a user puts it right. */
const UNWRITABLE: Readonly<Record<string, string>> = {
  EACCES: 'this user may not write there',
  EPERM: 'this user may not write there',
  EROFS: 'its file system is read-only',
};

/**
 * For `.catch()` on the first file or folder work makes in its folder (its lock, dispatch's
 * sent/): a folder in which none can be made is said to be that, not named by a hidden file's path.
 */
export function refuseUnwritable(folder: string, work: FolderWork): (error: unknown) => never {
  return (error) => {
    const code = (error as NodeJS.ErrnoException | undefined)?.code ?? '';
    const reason = UNWRITABLE[code];
    if (reason === undefined) throw error;
    throw new FolderNotWritableError(`cannot make files in ${folder} (${code}): ${reason}, and the ${work.worker} writes there`, { cause: error });
  };
}

/** A folder in which no file can be made (permissions, a read-only mount). */
export class FolderNotWritableError extends Error {
  constructor(message: string, options: ErrorOptions) {
    super(message, options);
    this.name = 'FolderNotWritableError';
  }
}

interface Holder {
  readonly host: string;
  readonly pid: number;
  /** Boot and start time of the holding process ('-' where unknown): a pid alive now may be another's. */
  readonly identity: string | undefined;
}

/** Host and process of a lock in our form ("<host> <pid>", then a token and `/` the process's identity); undefined for one only a hand wrote, which binds nobody. */
function holderOf(held: string): Holder | undefined {
  const match = /^(\S+) (\d+)(?: [^\s/]+(?:\/(\S+))?)?$/.exec(held.trim());
  return match ? { host: match[1]!, pid: Number(match[2]), identity: match[3] === '-' ? undefined : match[3] } : undefined;
}

/**
 * Whether the holder is still at work. On this host, its process must exist and be the same
 * one: after a power cut its pid is soon another process's, which must not keep the folder.
 */
function isLive(holder: Holder, path: string): boolean {
  if (holder.host !== THIS_HOST) return true;
  if (holder.pid === process.pid) return heldLocks.has(path);
  return processAlive(holder.pid) && (holder.identity === undefined || processIdentity(holder.pid) === holder.identity);
}
