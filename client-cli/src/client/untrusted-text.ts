/**
 * What a message id from a server must look like before the CLI uses it: it names files
 * (`receive`, `dispatch`), goes into paths and into a command line we print for the user to
 * run. MESH's own are `\d{20}_[0-9A-F]{6}`; another server's may differ, within these characters.
 */
export const SAFE_MESSAGE_ID = /^[A-Za-z0-9_-]{1,100}$/;

/** A message id the server gave, checked to be one (`what`: where it came from, for the error). */
export function checkedMessageId(value: unknown, what: string): string {
  if (typeof value === 'string' && SAFE_MESSAGE_ID.test(value)) return value;
  throw new Error(`${what} is not a message id: ${JSON.stringify(value) ?? String(value)}`);
}

/**
 * Text made safe for a terminal: control characters other than tab and line feed (which could
 * move the cursor, rewrite a line, retitle the window or set the clipboard) are shown as
 * `\uXXXX`. Server answers reach the output in error descriptions, ids, names and tracking.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- the control characters are what this finds
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (control) => `\\u${control.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** printable, and on one line: a line break or tab in a field cannot make what looks like another entry. */
export function printableLine(text: string): string {
  return printable(text).replace(/[\n\t]/g, (control) => (control === '\n' ? '\\n' : '\\t'));
}

/** Whether text holds a control character (a line break or tab included): what printableLine would escape. */
export function hasControlCharacters(text: string): boolean {
  return printableLine(text) !== text;
}
