import { AnswerCutOffError } from './errors.ts';

/**
 * What the tries of one send with the `same-token` retry policy have told so far: whether one
 * may have reached the server (the send is in doubt unless a later one succeeds), whether one
 * was answered 2xx and cut off (the server took it), and whether the server answers a send
 * repeated with its token with the first try's message, which alone allows a repeat then.
 */
export class SendTries {
  readonly #askRepeatable: (() => Promise<boolean>) | undefined;
  #inDoubt: Error | undefined;
  #taken: AnswerCutOffError | undefined;
  #repeatable: Promise<boolean> | undefined;

  constructor(askRepeatable: (() => Promise<boolean>) | undefined) {
    this.#askRepeatable = askRepeatable;
  }

  /** The send's failure, given the last try's `error`: a 2xx cut off, else the first try in doubt, else `error`. */
  failure(error: Error): Error {
    return this.#taken ?? this.#inDoubt ?? error;
  }

  /** Notes a try that may have reached the server. */
  noteInDoubt(doubt: Error): void {
    this.#inDoubt ??= doubt;
    if (doubt instanceof AnswerCutOffError && doubt.status >= 200 && doubt.status <= 299) this.#taken ??= doubt;
  }

  /** Whether the send may be repeated after a try in doubt: the server is asked the first time it comes to that. */
  repeatable(): Promise<boolean> {
    this.#repeatable ??= this.#askRepeatable?.().catch(() => false) ?? Promise.resolve(false);
    return this.#repeatable;
  }
}
