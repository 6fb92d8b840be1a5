import { InvalidArgumentError } from 'commander';
import { hostNameProblem, ipAddressProblem } from '../../../../shared/src/pki/host-names.ts';

/** commander parser for `--dns <name...>`: each a host name, refused as a usage error before anything is signed. */
export function dnsNameOption(value: string, previous: readonly string[] = []): string[] {
  return collect(value, previous, hostNameProblem);
}

/** commander parser for `--ip <address...>`: each an IP address, refused as a usage error before anything is signed. */
export function ipAddressOption(value: string, previous: readonly string[] = []): string[] {
  return collect(value, previous, ipAddressProblem);
}

function collect(value: string, previous: readonly string[], problemOf: (value: string) => string | undefined): string[] {
  const problem = problemOf(value);
  if (problem) throw new InvalidArgumentError(problem);
  return [...previous, value];
}
