import { lstat, mkdir, readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { syncFolder, temporaryNames, writeFileAtomically } from './durable-files.ts';
import { ignoreMissing } from './fs-errors.ts';
import { readPlainJsonFile } from './plain-json-file.ts';

/*
 * Before anything of a message is fetched, receive records the names it will write for it (its
 * claim) in a hidden folder beside them. A server picks the ids and file names, and writes what
 * the files hold: only this record, which no server can write or name (a name it picks never
 * starts with a dot nor holds a `/`), tells a file receive may replace (an earlier save of the
 * same message: its acknowledgement lost, its run cut short or failed) from any other.
 */

/** The hidden folder of claims, in the receive folder. */
export const CLAIMS_FOLDER = '.meshbox-receive';

/**
 * A claim left behind (its message acknowledged by another client of the mailbox, or expired,
 * before a receive here finished it) is removed after this long: MESH keeps an unacknowledged
 * message for days, not weeks, and every attempt at a message writes its claim afresh.
 */
const CLAIM_LIFETIME_MS = 30 * 24 * 60 * 60 * 1000;

/** The names receive writes for a message, in the receive folder. */
export interface Claim {
  readonly messageId: string;
  readonly names: readonly string[];
}

function claimsFolderOf(folder: string): string {
  return join(folder, CLAIMS_FOLDER);
}

function claimPath(folder: string, messageId: string): string {
  return join(claimsFolderOf(folder), `${messageId}.json`);
}

/** Far more than a claim holds (two names of at most 255 bytes). */
const MAX_CLAIM_BYTES = 64 * 1024;

/** The claim in the file `name` of the claims folder; undefined when it holds none. */
async function readClaim(folder: string, name: string): Promise<Claim | undefined> {
  const claim = await readPlainJsonFile(join(claimsFolderOf(folder), name), MAX_CLAIM_BYTES);
  const { messageId, names } = claim ?? {};
  if (typeof messageId !== 'string' || !Array.isArray(names) || !names.every((each) => typeof each === 'string')) return undefined;
  return { messageId, names };
}

/** Every claim in the receive folder, of messages not yet acknowledged. */
export async function readClaims(folder: string): Promise<Claim[]> {
  const files = (await readdir(claimsFolderOf(folder)).catch(ignoreMissing)) ?? [];
  const claims: Claim[] = [];
  for (const name of files.filter((file) => file.endsWith('.json') && !file.startsWith('.'))) {
    const claim = await readClaim(folder, name);
    if (claim) claims.push(claim);
  }
  return claims;
}

/**
 * Records, durably, that `names` in the folder are the message's to write, in place of any claim
 * of it before: on disk before any of them is written, so that no crash leaves a file of the
 * message that the next run cannot tell for its own.
 */
export async function writeClaim(folder: string, messageId: string, names: readonly string[]): Promise<void> {
  const claims = claimsFolderOf(folder);
  const created = await mkdir(claims).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
      return false;
    },
  );
  if (created) {
    await syncFolder(folder);
  } else if (!(await lstat(claims)).isDirectory()) {
    // A link would have the claims written where its maker chose.
    throw new Error(`${claims} is not a folder: receive keeps its record of the files it writes there; move it away`);
  }
  const claim: Claim = { messageId, names };
  await writeFileAtomically(claimPath(folder, messageId), `${JSON.stringify(claim)}\n`);
  await syncFolder(claims);
}

/** The message is acknowledged (or gone): its files are the user's now. The claims folder goes once empty. */
export async function releaseClaim(folder: string, messageId: string): Promise<void> {
  await rm(claimPath(folder, messageId), { force: true });
  await removeClaimsFolderIfEmpty(folder);
}

/**
 * Removes the claims older than CLAIM_LIFETIME_MS, and the temporary files of claims whose
 * writing a crash cut short (for a caller holding the folder's lock, none is being written).
 */
export async function removeExpiredClaims(folder: string): Promise<void> {
  const claims = claimsFolderOf(folder);
  const files = await readdir(claims).catch(ignoreMissing);
  if (!files) return;
  const leftovers = new Set(temporaryNames(files));
  for (const name of files) {
    const path = join(claims, name);
    const stats = await lstat(path).catch(ignoreMissing);
    if (stats && (leftovers.has(name) || Date.now() - stats.mtimeMs > CLAIM_LIFETIME_MS)) await rm(path, { force: true });
  }
  await removeClaimsFolderIfEmpty(folder);
}

/** Best effort: a folder still holding claims stays, and an empty one left behind is harmless. */
async function removeClaimsFolderIfEmpty(folder: string): Promise<void> {
  await rmdir(claimsFolderOf(folder)).catch(() => undefined);
}
