import { TooManyRequestsError } from './errors.ts';
import { HoldsPerKey } from './holds-per-key.ts';

/** How soon a mailbox refused a transfer may try again. */
const RETRY_AFTER_SECONDS = 5;

/**
 * What one mailbox has in progress per process, so that one mailbox holding many transfers open
 * (slowly, or never reading) cannot take from every other mailbox what they need: chunks
 * streaming to or from object storage, each holding one of the process's connections to it,
 * counted; and small messages' bodies arriving, held in memory, by their size. A burst of small
 * sends (NHS's JavaScript client's conformance test sends 600 at once from one mailbox) so takes
 * little of what a few large bodies would. (How many requests one client holds open at all is
 * bounded by its connections: MESHBOX_MAX_CONNECTIONS_PER_CLIENT.)
 */
export class TransferSlots {
  readonly #transfers: HoldsPerKey;
  readonly #bodyBytes: HoldsPerKey;

  /**
   * `perMailbox` transfers at once (0: no limit); small bodies up to as many of the largest kept
   * with their record (`inlinePayloadBytes`) in bytes.
   */
  constructor(perMailbox: number, inlinePayloadBytes: number) {
    this.#transfers = new HoldsPerKey(perMailbox);
    this.#bodyBytes = new HoldsPerKey(perMailbox * inlinePayloadBytes);
  }

  /** A slot for one transfer to or from object storage, freed by calling the function returned (again changes nothing); 429 when the mailbox has none left. */
  take(mailboxId: string): () => void {
    return held(this.#transfers.take(mailboxId));
  }

  /** Room for a small body of `bytes` while it arrives, freed as `take`'s; 429 when the mailbox's bodies arriving would take more than their share. */
  holdBody(mailboxId: string, bytes: number): () => void {
    return held(this.#bodyBytes.take(mailboxId, bytes));
  }
}

function held(release: (() => void) | undefined): () => void {
  if (!release) throw new TooManyRequestsError(RETRY_AFTER_SECONDS);
  return release;
}
