/** Mailbox ids: letters and digits, case-insensitive (kept upper case). */
export const MAILBOX_ID_PATTERN = /^[A-Za-z0-9]{1,32}$/;

/** The upper-case mailbox id, or an error saying what a mailbox id must be. */
export function parseMailboxId(value: string): string {
  if (!MAILBOX_ID_PATTERN.test(value)) throw new Error(`invalid mailbox id "${value}": 1 to 32 letters and digits`);
  return value.toUpperCase();
}
