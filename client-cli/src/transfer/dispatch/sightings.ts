import { setTimeout as sleep } from 'node:timers/promises';
import { type FileIdentity, sameFile } from '../file-identity.ts';

/** A file and its control file (undefined: none, or none that could be looked at), as looked at once. */
export interface Look {
  readonly file: FileIdentity;
  readonly control: FileIdentity | undefined;
}

function sameLook(now: Look, then: Look): boolean {
  const sameControl = now.control === undefined || then.control === undefined ? now.control === then.control : sameFile(now.control, then.control);
  return sameFile(now.file, then.file) && sameControl;
}

/**
 * When this process first saw each file of the folder as it is now, by this machine's monotonic
 * clock. A file's modification time is the file server's clock, which may run behind this
 * machine's (or keep only even seconds): a file written to a moment ago may look minutes old,
 * and only one this process has itself seen unchanged for the settle time is not being written.
 * A watch keeps them from pass to pass, so that a file seen before goes without a wait.
 */
export class Sightings {
  #seen = new Map<string, { readonly look: Look; readonly at: number }>();

  /** Every file of a listing, as it looked; a file not among them is forgotten. One that looks as it did keeps its first sighting. */
  listed(looks: ReadonlyMap<string, Look>): void {
    // After every look was taken: the wait is counted from the last of them, and each file has been seen unchanged for at least as long.
    const now = performance.now();
    const seen = new Map<string, { readonly look: Look; readonly at: number }>();
    for (const [file, look] of looks) {
      const before = this.#seen.get(file);
      seen.set(file, { look, at: before !== undefined && sameLook(look, before.look) ? before.at : now });
    }
    this.#seen = seen;
  }

  /**
   * Waits until the file was first seen `settleMs` ago (at once if longer ago). The files of a
   * listing were seen together: a pass waits once, before the first of those new to it.
   */
  async waitToSettle(file: string, settleMs: number, signal: AbortSignal | undefined): Promise<void> {
    const wait = (this.#seen.get(file)?.at ?? performance.now()) + settleMs - performance.now();
    if (wait > 0) await sleep(wait, undefined, { signal });
  }

  /** Whether the file looks as it did when first seen (a file not seen, as not). */
  unchangedSinceSeen(file: string, look: Look): boolean {
    const seen = this.#seen.get(file);
    return seen !== undefined && sameLook(look, seen.look);
  }
}
