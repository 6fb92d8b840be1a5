import { isIP } from 'node:net';

/** One label of a host name: letters, digits and hyphens (not at either end), 63 at most. */
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
/** Labels separated by dots; a wildcard only as the whole first label, the one place TLS clients match it. */
const HOST_NAME = new RegExp(`^(?:\\*\\.)?${LABEL}(?:\\.${LABEL})*$`, 'i');
const MAX_HOST_NAME_LENGTH = 253;

/**
 * Why `value` cannot go into a certificate as a DNS name, or undefined: node-forge writes
 * whatever it is given.
 */
export function hostNameProblem(value: string): string | undefined {
  // It would fit the pattern, but a client connecting to an IP address checks only IP entries.
  if (isIP(value) !== 0) return 'Give a host name (an IP address goes with --ip).';
  if (value.length > MAX_HOST_NAME_LENGTH || !HOST_NAME.test(value)) {
    return 'Give a host name: letters, digits and hyphens in labels separated by dots, with *. first for a wildcard.';
  }
  return undefined;
}

/**
 * Why `value` cannot go into a certificate as an IP address, or undefined: node-forge encodes
 * 999.1.1.1 as some other address rather than refusing it.
 */
export function ipAddressProblem(value: string): string | undefined {
  // isIP also takes an IPv6 zone (%eth0), which forge encodes as a malformed address, and a
  // dotted IPv4 tail (::ffff:10.0.0.5), which it cannot encode at all: IPv6 in hex only.
  if (isIP(value) === 0 || (value.includes(':') && !/^[0-9a-f:]+$/i.test(value))) {
    return 'Give an IPv4 address, or an IPv6 one in hex with no zone, e.g. 10.0.0.5 or 2001:db8::5.';
  }
  return undefined;
}
