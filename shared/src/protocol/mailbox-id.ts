/** Mailbox ids: letters and digits, case-insensitive (kept upper case). */
export const MAILBOX_ID_PATTERN = /^[A-Za-z0-9]{1,32}$/;

/**
 * The mailbox id a value names, in capitals; undefined when it names none. Only ASCII letters
 * and digits are upper-cased: Unicode's upper case of another value can be some mailbox's id
 * (`ſ` is S, `ı` is I, `ß` is SS).
 */
export function mailboxIdOf(value: string): string | undefined {
  return MAILBOX_ID_PATTERN.test(value) ? value.toUpperCase() : undefined;
}

/** The upper-case mailbox id, or an error saying what a mailbox id must be. */
export function parseMailboxId(value: string): string {
  if (!MAILBOX_ID_PATTERN.test(value)) throw new Error(`invalid mailbox id "${value}": 1 to 32 letters and digits`);
  return value.toUpperCase();
}

/**
 * Words of the API's own paths (`/messageexchange/workflowsearch/{workflow}`, `.../endpointlookup/...`):
 * a mailbox so named would have its inbox and count taken for lookups (paths match in any letter case).
 */
const ROUTE_WORDS = new Set(['WORKFLOWSEARCH', 'ENDPOINTLOOKUP']);

/** parseMailboxId for a mailbox to be created: a word of the API's paths is refused too. */
export function parseNewMailboxId(value: string): string {
  const id = parseMailboxId(value);
  if (ROUTE_WORDS.has(id)) throw new Error(`invalid mailbox id "${value}": ${id} is a word of the API's paths (/messageexchange/${id.toLowerCase()}/...)`);
  return id;
}
