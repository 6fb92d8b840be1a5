// Certificate lifetimes without node-forge: the CLI's help texts and the server's checks need
// them, and neither should load forge for them.

export const DAY_MS = 86_400_000;

/** A leaf certificate for two years and a bit: the longest the CA/Browser baseline ever allowed. */
export const DEFAULT_LEAF_VALIDITY_DAYS = 825;

/** A certificate this close to its end (this many days or fewer left) is warned about (by the server, the CLI's handshake): time to have a new one signed and installed. */
export const EXPIRY_WARNING_DAYS = 30;

/**
 * Days from `now` until a certificate's `notAfter`, a part day counted as one: a certificate
 * of N days has N on the day it is issued and 1 on its last day; 0 or less once it has expired.
 * So a certificate with N or fewer expires within N days.
 */
export function daysLeft(notAfter: Date, now: Date): number {
  return Math.ceil((notAfter.getTime() - now.getTime()) / DAY_MS);
}

/** `1 day`, `N days`. */
export function dayCount(days: number): string {
  return `${days} day${days === 1 ? '' : 's'}`;
}

/** How a certificate's end is told, by the days left (`daysLeft`): `has expired`, `expires in N days`. */
export function expiryPhrase(left: number): string {
  return left <= 0 ? 'has expired' : `expires in ${dayCount(left)}`;
}
