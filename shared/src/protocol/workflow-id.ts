/** As long as a mex-WorkflowID may be (the server refuses longer ones). */
const MAX_WORKFLOW_ID_LENGTH = 300;
/**
 * Anything but ASCII's printable characters (MESH's workflow ids are such: `PATH_TEST_RESULTS`),
 * and '/' (a lookup path segment). Spaces (the server trims the header, and a lookup URL would
 * need them escaped), control characters, and what looks like another character or like none (an
 * en dash pasted from a document, a zero-width space) would register an id no sender types.
 */
const NOT_IN_WORKFLOW_IDS = /[^\x21-\x7e]|\//;

/** What a URL takes for a step in its path, not a segment of it: a lookup of such an id would ask for another path. */
const DOT_SEGMENTS = new Set(['.', '..']);

/** A workflow id as given, or an error saying what one must be: one a sender's mex-WorkflowID and a lookup path can name. */
export function parseWorkflowId(value: string): string {
  if (value === '' || value.length > MAX_WORKFLOW_ID_LENGTH || NOT_IN_WORKFLOW_IDS.test(value) || DOT_SEGMENTS.has(value)) {
    throw new Error(`invalid workflow id ${JSON.stringify(value)}: 1 to ${MAX_WORKFLOW_ID_LENGTH} of ASCII's letters, digits and punctuation, without spaces or '/', and not '.' or '..'`);
  }
  return value;
}
