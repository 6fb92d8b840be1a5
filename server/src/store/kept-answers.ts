import { LRUCache } from 'lru-cache';

/** At most this long: a change the directory's version missed (made by hand, or by an older release) shows within it. */
const KEPT_MS = 60_000;
/**
 * An answer with fewer items than this is small: cheap to read again, and kept apart, so that
 * many of them (asked for made-up workflows or ODS codes, say) cannot push out a large one.
 */
const SMALL_ANSWER = 100;
const SMALL_ANSWERS_KEPT = 1_000;
/** Items kept in large answers, all of them together: a national workflow's receivers are tens of thousands. */
const LARGE_ANSWER_ITEMS_KEPT = 200_000;

interface Kept<T> {
  readonly version: string;
  readonly items: readonly T[];
}

/**
 * Answers to lookups, kept per query while the version of what they are read from is unchanged.
 * A query asked while its answer is being read waits for that read instead of starting another.
 * While an answer is kept, every asker gets the same array, so what is made from it (a rendered
 * body) can be kept beside it.
 */
export class KeptAnswers<T> {
  readonly #small = new LRUCache<string, Kept<T>>({ max: SMALL_ANSWERS_KEPT, ttl: KEPT_MS });
  readonly #large = new LRUCache<string, Kept<T>>({ maxSize: LARGE_ANSWER_ITEMS_KEPT, sizeCalculation: (kept) => kept.items.length, ttl: KEPT_MS });
  readonly #reading = new Map<string, { readonly version: string; readonly items: Promise<readonly T[]> }>();

  /** The answer to `query` at `version`: kept, being read, or read now with `read`. */
  answer(query: string, version: string, read: () => Promise<readonly T[]>): Promise<readonly T[]> {
    const kept = this.#small.get(query) ?? this.#large.get(query);
    if (kept?.version === version) return Promise.resolve(kept.items);
    const reading = this.#reading.get(query);
    if (reading?.version === version) return reading.items;
    const entry = { version, items: read() };
    this.#reading.set(query, entry);
    entry.items.then(
      (items) => {
        if (this.#reading.get(query) !== entry) return;
        this.#reading.delete(query);
        this.#small.delete(query);
        this.#large.delete(query);
        (items.length < SMALL_ANSWER ? this.#small : this.#large).set(query, { version, items });
      },
      () => {
        if (this.#reading.get(query) === entry) this.#reading.delete(query);
      },
    );
    return entry.items;
  }
}
