import { InvalidArgumentError } from 'commander';

/** Far beyond any count these options need, and what Redis takes as a COUNT (a number past it fails there, with Redis's words). */
const MAX_COUNT = 1_000_000_000;

/** Parses a count given to an admin option (--tail, --failed, --days): a whole number of at least `minimum`, or a usage error naming the option. */
export function countOption(minimum: 0 | 1): (value: string) => number {
  return (value) => {
    // Not Number() alone: it takes '', '0x10' and '1e3' too.
    if (!/^\d+$/.test(value) || Number(value) < minimum || Number(value) > MAX_COUNT) {
      throw new InvalidArgumentError(`Give a ${minimum === 1 ? 'positive whole number' : 'whole number (0 or more)'}. At most ${MAX_COUNT}.`);
    }
    return Number(value);
  };
}
