import type { Middleware } from 'koa';

/**
 * What requests are still doing: a request's handler can run on after its connection is gone
 * (a client that left mid-send), and a request gives its token back only once its connection
 * is done with it. The server's 'close' comes when the last connection has closed, so a
 * shutdown that closed Redis and S3 then would cut that work off: a token never given back
 * (the client's identical retry refused for half an hour), a message half recorded. Shutdown
 * waits for it instead.
 */
export class PendingWork {
  readonly #pending = new Map<Promise<void>, PendingKind>();

  /** Keeps `work` counted until it settles; returns it (its failure is the caller's to handle). */
  track<T>(work: Promise<T>, kind: PendingKind = 'request'): Promise<T> {
    const forget = (): void => void this.#pending.delete(counted);
    const counted = work.then(forget, forget);
    this.#pending.set(counted, kind);
    return work;
  }

  /** Every request's handler, from its first middleware to its last. */
  middleware(): Middleware {
    return (_ctx, next) => this.track(next());
  }

  /** Resolves once nothing tracked (of `kind`, if given) is left, including what tracked work started meanwhile. */
  async settled(kind?: PendingKind): Promise<void> {
    const left = (): Promise<void>[] => [...this.#pending].filter(([, each]) => kind === undefined || each === kind).map(([work]) => work);
    for (let waiting = left(); waiting.length > 0; waiting = left()) await Promise.all(waiting);
  }
}

/** A request's handler (and what it does before its connection is done), or what a request goes on doing after its answer. */
export type PendingKind = 'request' | 'follow-up';
