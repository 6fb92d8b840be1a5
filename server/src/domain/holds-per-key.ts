/**
 * Things held at once per key, each key up to the same maximum: a mailbox's transfers, a
 * client's connections. What one key holds cannot be taken from another.
 */
export class HoldsPerKey {
  readonly #max: number;
  readonly #held = new Map<string, number>();

  /** `max` 0: no limit. */
  constructor(max: number) {
    this.#max = max;
  }

  get max(): number {
    return this.#max;
  }

  /**
   * `amount` more held for `key` (one thing, or its size), given back by calling the function
   * returned (again changes nothing); undefined when that would take `key` past its maximum.
   */
  take(key: string, amount = 1): (() => void) | undefined {
    if (this.#max === 0) return () => {};
    const held = this.#held.get(key) ?? 0;
    if (held + amount > this.#max) return undefined;
    this.#held.set(key, held + amount);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const left = (this.#held.get(key) ?? amount) - amount;
      if (left <= 0) this.#held.delete(key);
      else this.#held.set(key, left);
    };
  }
}
