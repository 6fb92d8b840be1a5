import { constants, open } from 'node:fs/promises';

/** Opened without following a link nor waiting on a FIFO: names in a shared folder that anyone with write access to it can predict. */
export const NO_LINK_NO_WAIT = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * The JSON object in a file this CLI wrote, if `path` is a plain file (not a link, a FIFO, a
 * device) of at most `maxBytes` holding one; undefined otherwise, or when it cannot be read.
 */
export async function readPlainJsonFile(path: string, maxBytes: number): Promise<Record<string, unknown> | undefined> {
  const handle = await open(path, NO_LINK_NO_WAIT).catch(() => undefined);
  if (!handle) return undefined;
  try {
    const stats = await handle.stat();
    if (!stats.isFile() || stats.size > maxBytes) return undefined;
    const parsed = JSON.parse(await handle.readFile('utf8')) as unknown;
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  } finally {
    await handle.close();
  }
}
