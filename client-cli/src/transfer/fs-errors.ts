/** For `.catch()` on a file operation: nothing there is an answer (undefined), any other error is not. */
export function ignoreMissing(error: NodeJS.ErrnoException): undefined {
  if (error.code !== 'ENOENT') throw error;
  return undefined;
}

/** For `.catch()` on a mkdir: a folder already there is what was wanted. */
export function ignoreExisting(error: NodeJS.ErrnoException): void {
  if (error.code !== 'EEXIST') throw error;
}
