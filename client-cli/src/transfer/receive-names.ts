import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { ignoreMissing } from './fs-errors.ts';
import type { ReceiveClaims } from './receive-claims.ts';

/**
 * A file where `receive` would save a message that is not an earlier save of that message: the
 * server picks the id, and the id picks the names (`<ID>.json`, `<ID>_<file>`), so a server,
 * broken or hostile, could otherwise have receive replace any file there whose name it can make.
 */
export class UnrelatedFileError extends Error {
  readonly path: string;

  /** `appeared`: during the download (the name was free when it began). */
  constructor(messageId: string, path: string, appeared = false) {
    super(
      `${path} ${appeared ? 'appeared during the download' : 'is in the folder'} and is not meshbox's earlier save of message ${messageId}, ` +
        `so it is left as it is and the message is not saved: move that file away, and the next receive saves the message`,
    );
    this.name = 'UnrelatedFileError';
    this.path = path;
  }
}

/**
 * A name two messages not yet acknowledged would both be saved under (a server, broken or
 * hostile, made their ids and file names meet): the one that claimed it first keeps it, and one
 * message never replaces another's files.
 */
export class NameClaimedError extends Error {
  readonly path: string;

  constructor(messageId: string, path: string, claimedBy: string) {
    super(
      `message ${messageId} would be saved as ${path}, which message ${claimedBy} (not yet acknowledged) is saved as, ` +
        `so it is not saved: the server gave the two messages the same file name`,
    );
    this.name = 'NameClaimedError';
    this.path = path;
  }
}

/**
 * Claims `names` in the folder for a message (ReceiveClaims.write) before anything of it is
 * fetched, and returns those of them to be replaced: the files there that an earlier run of this
 * message wrote (its claim's `placed`). A name another message's claim holds throws
 * NameClaimedError, as does a claim filed under this id for an id differing in case; a file
 * this message did not write, UnrelatedFileError. File systems that ignore case are why names
 * and ids are compared without it across messages.
 */
export async function claimNames(claims: ReceiveClaims, messageId: string, names: readonly string[]): Promise<ReadonlySet<string>> {
  const { folder } = claims;
  const filed = claims.filedUnder(messageId);
  if (filed !== undefined && filed.messageId !== messageId) throw new NameClaimedError(messageId, join(folder, `${messageId}.json`), filed.messageId);
  for (const claim of claims.others(messageId)) {
    const taken = names.find((name) => claim.names.some((other) => other.toUpperCase() === name.toUpperCase()));
    if (taken !== undefined) throw new NameClaimedError(messageId, join(folder, taken), claim.messageId);
  }
  const replaced = new Set<string>();
  for (const name of names) {
    if (!(await lstat(join(folder, name)).catch(ignoreMissing))) continue;
    if (!filed?.placed.includes(name)) throw new UnrelatedFileError(messageId, join(folder, name));
    replaced.add(name);
  }
  await claims.write({ messageId, names, placed: [...replaced] });
  return replaced;
}
