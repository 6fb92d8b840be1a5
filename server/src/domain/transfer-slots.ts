import { TooManyRequestsError } from './errors.ts';
import { HoldsPerKey } from './holds-per-key.ts';

/** How soon a mailbox refused a transfer may try again. */
const RETRY_AFTER_SECONDS = 5;

/**
 * Transfers (a chunk streaming in or out of object storage, a small message's body arriving)
 * in progress per mailbox, in this process. Each holds one of the process's connections to
 * object storage, or the body in memory, for as long as its client takes: one mailbox holding
 * many open (slowly, or never reading) would otherwise take them all from every other mailbox.
 */
export class TransferSlots {
  readonly #slots: HoldsPerKey;

  /** `perMailbox` 0: no limit. */
  constructor(perMailbox: number) {
    this.#slots = new HoldsPerKey(perMailbox);
  }

  /** A slot for one transfer, freed by calling the function returned (again changes nothing); 429 when the mailbox has none left. */
  take(mailboxId: string): () => void {
    const release = this.#slots.take(mailboxId);
    if (!release) throw new TooManyRequestsError(RETRY_AFTER_SECONDS);
    return release;
  }
}
