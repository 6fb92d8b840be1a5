/** A count given to an admin option (--tail, --failed); refused, naming the option, unless a whole number of at least `minimum`. */
export function parseCountOption(flag: string, value: string, minimum: 0 | 1): number {
  // Not Number() alone: it takes '', '0x10' and '1e3' too.
  if (!/^\d+$/.test(value) || Number(value) < minimum) {
    throw new Error(`${flag} must be a ${minimum === 1 ? 'positive whole number' : 'whole number (0 or more)'}, not "${value}"`);
  }
  return Number(value);
}
