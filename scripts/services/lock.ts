import { open, readFile, rm } from 'node:fs/promises';
import { processAlive } from './processes.ts';

/**
 * Runs `action` holding an exclusive lock file, so concurrent callers (ava runs test files
 * in parallel processes) do not start two copies of a service. A lock left by a dead
 * process is taken over.
 */
export async function withFileLock<T>(path: string, action: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const handle = await open(path, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number(await readFile(path, 'utf8').catch(() => ''));
      if (holder > 0 && !processAlive(holder)) {
        await rm(path, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for lock ${path} held by pid ${holder}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  try {
    return await action();
  } finally {
    await rm(path, { force: true });
  }
}
