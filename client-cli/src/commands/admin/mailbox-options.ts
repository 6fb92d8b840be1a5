import { InvalidArgumentError } from 'commander';
import { hasControlCharacters } from '../../client/untrusted-text.ts';

/** ODS codes are a few letters and digits (`A81001`, `RRV`, `X26`): a wider margin than any has. */
const ODS_CODE = /^[A-Za-z0-9]{1,12}$/;
/** A display name's longest: lookups return it to every client, and it names the certificate's organisation. */
const MAX_NAME_LENGTH = 200;

/**
 * Parses --ods: an ODS code, trimmed (a stray space would make it match no lookup until an
 * admin noticed and corrected it), or a usage error.
 */
export function odsCodeOption(value: string): string {
  const code = value.trim();
  if (!ODS_CODE.test(code)) throw new InvalidArgumentError('Give an ODS code: 1 to 12 letters and digits, e.g. A81001.');
  return code.toUpperCase();
}

/** Parses --name: a display name on one line without invisible characters (hasControlCharacters), trimmed, of at most MAX_NAME_LENGTH characters, or a usage error. */
export function mailboxNameOption(value: string): string {
  const name = value.trim();
  if (name.length > MAX_NAME_LENGTH || hasControlCharacters(name)) {
    throw new InvalidArgumentError(`Give a name of at most ${MAX_NAME_LENGTH} characters, on one line (no tabs, control or invisible characters such as a right-to-left override).`);
  }
  return name;
}
