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
  readonly #pending = new Set<Promise<void>>();

  /** Keeps `work` counted until it settles; returns it (its failure is the caller's to handle). */
  track<T>(work: Promise<T>): Promise<T> {
    const forget = (): void => void this.#pending.delete(counted);
    const counted = work.then(forget, forget);
    this.#pending.add(counted);
    return work;
  }

  /** Every request's handler, from its first middleware to its last. */
  middleware(): Middleware {
    return (_ctx, next) => this.track(next());
  }

  /** Resolves once nothing tracked is left, including what tracked work started meanwhile. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all(this.#pending);
  }
}
