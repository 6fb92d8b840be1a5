import { refusedForNow, serverOutOfReach } from '../client/errors.ts';

/**
 * Where a pass over items (a folder's files, an inbox's messages) ends: at once when the server
 * is out of reach, and at the second item in a row refused as every item may be (403, or 429 or
 * 503 past the retries: the mailbox's credentials, the server in maintenance). One alone may be
 * the item's own (a send to a recipient whose record the server cannot read is answered 503):
 * the pass goes on after it, and the other items are not held back by it.
 */
export class PassEnd {
  #refusedBefore = false;

  /** Whether the pass ends at this item's failure. */
  endsAt(error: unknown): boolean {
    if (serverOutOfReach(error)) return true;
    const refused = refusedForNow(error);
    const ends = refused && this.#refusedBefore;
    this.#refusedBefore = refused;
    return ends;
  }

  /** An item went: a refusal after it is the next item's alone. */
  served(): void {
    this.#refusedBefore = false;
  }
}
