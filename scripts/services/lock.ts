import { randomUUID } from 'node:crypto';
import { breakStaleLock, lockHolder, releaseLock, tryLock } from '../../shared/src/file-lock.ts';
import { processAlive, sleep } from './processes.ts';

/**
 * Runs `action` holding an exclusive lock file, so concurrent callers (ava runs test files
 * in parallel processes) never start two copies of a service. The lock holds
 * "<pid> <random token>"; one whose pid is dead (a crashed or killed caller) is broken.
 */
export async function withFileLock<T>(path: string, action: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const token = `${process.pid} ${randomUUID()}`;
  const deadline = Date.now() + timeoutMs;
  while (!(await tryLock(path, token))) {
    const holder = await lockHolder(path);
    if (holder === undefined) continue; // released meanwhile: try again at once
    if (!processAlive(Number(holder.split(' ')[0]))) {
      await breakStaleLock(path, holder);
      continue;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${path} (held by pid ${holder.split(' ')[0]})`);
    await sleep(50 + Math.random() * 100);
  }
  try {
    return await action();
  } finally {
    await releaseLock(path, token);
  }
}
