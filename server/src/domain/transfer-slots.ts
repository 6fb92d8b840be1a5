import { TooManyRequestsError } from './errors.ts';

/** How soon a mailbox refused a transfer may try again. */
const RETRY_AFTER_SECONDS = 5;

/**
 * Transfers (a chunk streaming in or out of object storage, a small message's body arriving)
 * in progress per mailbox, in this process. Each holds one of the process's connections to
 * object storage, or the body in memory, for as long as its client takes: one mailbox holding
 * many open (slowly, or never reading) would otherwise take them all from every other mailbox.
 */
export class TransferSlots {
  readonly #perMailbox: number;
  readonly #inUse = new Map<string, number>();

  /** `perMailbox` 0: no limit. */
  constructor(perMailbox: number) {
    this.#perMailbox = perMailbox;
  }

  /** A slot for one transfer, freed by calling the function returned (again changes nothing); 429 when the mailbox has none left. */
  take(mailboxId: string): () => void {
    if (this.#perMailbox === 0) return () => {};
    const used = this.#inUse.get(mailboxId) ?? 0;
    if (used >= this.#perMailbox) throw new TooManyRequestsError(RETRY_AFTER_SECONDS);
    this.#inUse.set(mailboxId, used + 1);
    let freed = false;
    return () => {
      if (freed) return;
      freed = true;
      const left = (this.#inUse.get(mailboxId) ?? 1) - 1;
      if (left === 0) this.#inUse.delete(mailboxId);
      else this.#inUse.set(mailboxId, left);
    };
  }
}
