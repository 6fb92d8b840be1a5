import { InvalidArgumentError } from 'commander';
import { SAFE_MESSAGE_ID } from '../client/untrusted-text.ts';

/**
 * commander parser for a message id the user gives. Refused before connecting: an empty one (a
 * script's `$(meshbox inbox | head -1)` on an empty inbox), `.` or `..` would make another
 * request's path (the inbox list, the mailbox itself), whose answer would be taken for the message.
 */
export function messageIdArgument(value: string): string {
  if (!SAFE_MESSAGE_ID.test(value)) {
    throw new InvalidArgumentError('Give a message id, e.g. 20261201055837968989_EAF8A8 (letters, digits, _ and - only).');
  }
  return value;
}

/** commander parser for `<id...>`: each a message id (messageIdArgument). */
export function messageIdsArgument(value: string, previous: readonly string[] = []): string[] {
  return [...previous, messageIdArgument(value)];
}
