/** As long as a mex-WorkflowID may be (the server refuses longer ones). */
const MAX_WORKFLOW_ID_LENGTH = 300;
/** Whitespace (the server trims the header, and a lookup URL would need it escaped), control characters, and '/' (a lookup path segment). */
const NOT_IN_WORKFLOW_IDS = /[\s\p{Cc}/]/u;

/** A workflow id as given, or an error saying what one must be: one a sender's mex-WorkflowID and a lookup path can name. */
export function parseWorkflowId(value: string): string {
  if (value === '' || value.length > MAX_WORKFLOW_ID_LENGTH || NOT_IN_WORKFLOW_IDS.test(value)) {
    throw new Error(`invalid workflow id ${JSON.stringify(value)}: 1 to ${MAX_WORKFLOW_ID_LENGTH} characters, without spaces, control characters or '/'`);
  }
  return value;
}
