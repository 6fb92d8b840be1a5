import { InvalidArgumentError } from 'commander';

/** Parses a count given to an admin option (--tail, --failed, --days): a whole number of at least `minimum`, or a usage error naming the option. */
export function countOption(minimum: 0 | 1): (value: string) => number {
  return (value) => {
    // Not Number() alone: it takes '', '0x10' and '1e3' too.
    if (!/^\d+$/.test(value) || Number(value) < minimum) {
      throw new InvalidArgumentError(`Give a ${minimum === 1 ? 'positive whole number' : 'whole number (0 or more)'}.`);
    }
    return Number(value);
  };
}
