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
 * The invisible characters that change how the text around them reads: bidirectional
 * overrides, embeddings and isolates (U+202E shows `GP1\u202e62X` as `GP1X26`, and
 * `scan\u202etxt.exe` as `scanexe.txt`), direction marks, zero-width space, word joiner, byte
 * order mark, and the line and paragraph separators some viewers break at. The zero-width
 * (non-)joiners are not among them: scripts such as Persian and Devanagari need them.
 */
export const TEXT_DISGUISES = /[\u061c\u200b\u200e\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]/g;

/**
 * What printable escapes: control characters other than tab and line feed (which could move
 * the cursor, rewrite a line, retitle the window or set the clipboard), and TEXT_DISGUISES.
 */
// eslint-disable-next-line no-control-regex -- the control characters are what this finds
const UNPRINTABLE = new RegExp(`[\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]|${TEXT_DISGUISES.source}`, 'g');

/**
 * Text made safe for a terminal: what UNPRINTABLE finds is shown as `\uXXXX`. Server answers
 * reach the output in error descriptions, ids, names and tracking.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (control) => `\\u${control.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * JSON text of a value that may hold untrusted text, safe for a terminal and still the same
 * JSON: JSON.stringify escapes C0 controls but writes C1 controls (U+009B is CSI to xterm) and
 * the invisible characters as they are; printable escapes them as `\uXXXX`, which JSON reads back
 * as the same characters.
 */
export function printableJson(value: unknown, indent?: number): string {
  return printable(JSON.stringify(value, null, indent));
}

/** printable, and on one line: a line break or tab in a field cannot make what looks like another entry. */
export function printableLine(text: string): string {
  return printable(text).replace(/[\n\t]/g, (control) => (control === '\n' ? '\\n' : '\\t'));
}

/** Whether text holds a control or invisible character (a line break or tab included): what printableLine would escape. */
export function hasControlCharacters(text: string): boolean {
  return printableLine(text) !== text;
}
