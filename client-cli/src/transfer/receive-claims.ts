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

/** The names receive writes for a message, in the receive folder, and those it has written. */
export interface Claim {
  readonly messageId: string;
  readonly names: readonly string[];
  /**
   * The names among them that a run of this message has written: only these may be replaced. A
   * name claimed and not written (the run failed first) may since have been taken by a file of
   * another's, which must stay.
   */
  readonly placed: readonly string[];
}

function claimsFolderOf(folder: string): string {
  return join(folder, CLAIMS_FOLDER);
}

/** By the id in capitals: on a file system that ignores case, ids differing only in it share the file, and must be seen to. */
function claimPath(folder: string, messageId: string): string {
  return join(claimsFolderOf(folder), `${messageId.toUpperCase()}.json`);
}

/** Far more than a claim holds (a few names of at most 255 bytes). */
const MAX_CLAIM_BYTES = 64 * 1024;

const strings = (value: unknown): value is string[] => Array.isArray(value) && value.every((each) => typeof each === 'string');

/** The claim in the file `name` of the claims folder; undefined when it holds none. */
async function readClaim(folder: string, name: string): Promise<Claim | undefined> {
  const claim = await readPlainJsonFile(join(claimsFolderOf(folder), name), MAX_CLAIM_BYTES);
  const { messageId, names, placed = [] } = claim ?? {};
  if (typeof messageId !== 'string' || !strings(names) || !strings(placed)) return undefined;
  return { messageId, names, placed };
}

/**
 * The claims of a receive folder, read once a pass (a pass over many messages must not read
 * every claim for each) and kept up to date by the writes and releases made through it. The
 * caller holds the folder's lock: nobody else changes them meanwhile.
 */
export class ReceiveClaims {
  readonly folder: string;
  /** By the id in capitals, as the files are named. */
  readonly #claims: Map<string, Claim>;

  private constructor(folder: string, claims: Map<string, Claim>) {
    this.folder = folder;
    this.#claims = claims;
  }

  /**
   * Reads the claims, removing first those older than CLAIM_LIFETIME_MS and the temporary files
   * of claims whose writing a crash cut short (for a caller holding the folder's lock, none is
   * being written).
   */
  static async read(folder: string): Promise<ReceiveClaims> {
    const claimsFolder = claimsFolderOf(folder);
    const files = (await readdir(claimsFolder).catch(ignoreMissing)) ?? [];
    const leftovers = new Set(temporaryNames(files));
    const claims = new Map<string, Claim>();
    for (const name of files) {
      const path = join(claimsFolder, name);
      const stats = await lstat(path).catch(ignoreMissing);
      if (stats === undefined) continue;
      if (leftovers.has(name) || Date.now() - stats.mtimeMs > CLAIM_LIFETIME_MS) {
        await rm(path, { force: true });
        continue;
      }
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const claim = await readClaim(folder, name);
      if (claim) claims.set(claim.messageId.toUpperCase(), claim);
    }
    if (files.length > 0 && claims.size === 0) await removeClaimsFolderIfEmpty(folder);
    return new ReceiveClaims(folder, claims);
  }


  /** The claim filed under this id, whatever the case of the id it holds (see claimPath). */
  filedUnder(messageId: string): Claim | undefined {
    return this.#claims.get(messageId.toUpperCase());
  }

  /** Every claim but the one filed under this id. */
  others(messageId: string): Claim[] {
    return [...this.#claims.values()].filter((claim) => claim.messageId.toUpperCase() !== messageId.toUpperCase());
  }

  /**
   * Records, durably, the claim of a message in place of any before: on disk before any of its
   * names is written (or, for `placed`, once it is), so that no crash leaves a file of the
   * message that the next run cannot tell for its own.
   */
  async write(claim: Claim): Promise<void> {
    const claims = claimsFolderOf(this.folder);
    const created = await mkdir(claims).then(
      () => true,
      (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
        return false;
      },
    );
    if (created) {
      await syncFolder(this.folder);
    } else if (!(await lstat(claims)).isDirectory()) {
      // A link would have the claims written where its maker chose.
      throw new Error(`${claims} is not a folder: receive keeps its record of the files it writes there; move it away`);
    }
    await writeFileAtomically(claimPath(this.folder, claim.messageId), `${JSON.stringify(claim)}\n`);
    await syncFolder(claims);
    this.#claims.set(claim.messageId.toUpperCase(), claim);
  }

  /** Records that a run of the message has written `name`: from now on it is the message's own to replace. */
  async placed(messageId: string, name: string): Promise<void> {
    const claim = this.filedUnder(messageId);
    if (claim === undefined || claim.messageId !== messageId || claim.placed.includes(name)) return;
    await this.write({ ...claim, placed: [...claim.placed, name] });
  }

  /**
   * The message is acknowledged (or gone): its files are the user's now. Only its own claim goes,
   * not one of an id differing in case. The claims folder goes once empty.
   */
  async release(messageId: string): Promise<void> {
    if (this.filedUnder(messageId)?.messageId !== messageId) return;
    await rm(claimPath(this.folder, messageId), { force: true });
    this.#claims.delete(messageId.toUpperCase());
    await removeClaimsFolderIfEmpty(this.folder);
  }
}

/** Best effort: a folder still holding claims stays, and an empty one left behind is harmless. */
async function removeClaimsFolderIfEmpty(folder: string): Promise<void> {
  await rmdir(claimsFolderOf(folder)).catch(() => undefined);
}
