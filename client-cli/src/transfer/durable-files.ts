import { open, rename, rm } from 'node:fs/promises';
import { temporaryPathBeside } from './download.ts';

/** Writes a whole file under a hidden temporary name, flushes it and renames it into place. */
export async function writeFileAtomically(path: string, text: string): Promise<void> {
  const temporary = temporaryPathBeside(path);
  const handle = await open(temporary, 'wx');
  try {
    await handle.writeFile(text);
    await handle.sync();
    await handle.close();
    await rename(temporary, path);
  } catch (error) {
    await handle.close().catch(() => undefined);
    await rm(temporary, { force: true });
    throw error;
  }
}

/**
 * Renames are durable only once their folder is flushed: after a power cut the files must be
 * where the server was told they are. (Windows cannot open a folder to flush it; NTFS
 * journals the rename itself.)
 */
export async function syncFolder(folder: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(folder, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
