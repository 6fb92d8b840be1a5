/**
 * MESH's inbox `workflow_filter`: `X` exact, `!X` not X, `X*` begins with, `!X*` does not
 * begin with, `*X*` contains, `!*X*` does not contain. Undefined: no filter.
 */
export function workflowMatcher(filter: string | undefined): ((workflowId: string) => boolean) | undefined {
  let pattern = (filter ?? '').trim();
  if (pattern === '') return undefined;
  const negated = pattern.startsWith('!');
  if (negated) pattern = pattern.slice(1);
  let matches: (workflowId: string) => boolean;
  if (pattern.length >= 2 && pattern.startsWith('*') && pattern.endsWith('*')) {
    const part = pattern.slice(1, -1);
    matches = (workflowId) => workflowId.includes(part);
  } else if (pattern.endsWith('*')) {
    const prefix = pattern.slice(0, -1);
    matches = (workflowId) => workflowId.startsWith(prefix);
  } else {
    matches = (workflowId) => workflowId === pattern;
  }
  return negated ? (workflowId) => !matches(workflowId) : matches;
}
