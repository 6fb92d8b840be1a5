import { isIP } from 'node:net';
import { InvalidArgumentError } from 'commander';

/** One label of a host name: letters, digits and hyphens (not at either end), 63 at most. */
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
/** Labels separated by dots; a wildcard only as the whole first label, the one place TLS clients match it. */
const HOST_NAME = new RegExp(`^(?:\\*\\.)?${LABEL}(?:\\.${LABEL})*$`, 'i');
const MAX_HOST_NAME_LENGTH = 253;

/**
 * commander parser for `--dns <name...>`: each a host name, refused as a usage error before
 * anything is signed (the CA library writes whatever it is given into the certificate).
 */
export function dnsNameOption(value: string, previous: readonly string[] = []): string[] {
  // It would fit the pattern, but a client connecting to an IP address checks only IP entries.
  if (isIP(value) !== 0) throw new InvalidArgumentError('Give a host name (an IP address goes with --ip).');
  if (value.length > MAX_HOST_NAME_LENGTH || !HOST_NAME.test(value)) {
    throw new InvalidArgumentError('Give a host name: letters, digits and hyphens in labels separated by dots, with *. first for a wildcard.');
  }
  return [...previous, value];
}

/**
 * commander parser for `--ip <address...>`, refused as a usage error before anything is signed:
 * the CA library encodes 999.1.1.1 as some other address rather than refusing it.
 */
export function ipAddressOption(value: string, previous: readonly string[] = []): string[] {
  // isIP also takes an IPv6 zone (%eth0), which the library encodes as a malformed address, and
  // a dotted IPv4 tail (::ffff:10.0.0.5), which it cannot encode at all: IPv6 in hex only.
  if (isIP(value) === 0 || (value.includes(':') && !/^[0-9a-f:]+$/i.test(value))) {
    throw new InvalidArgumentError('Give an IPv4 address, or an IPv6 one in hex with no zone, e.g. 10.0.0.5 or 2001:db8::5.');
  }
  return [...previous, value];
}
