import { mkdtempSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// Types only: the servers and benchmarks in scripts/ use this module outside ava, which refuses to load there.
import type { ExecutionContext, TestFn } from 'ava';

// The suite runs many times a day on shared machines: a folder left each time is thousands of
// folders, some holding a CA's private key. Every folder here is named meshbox-<name>-XXXXXX, so
// that what a run leaves is easy to find (.ci/run lists such folders at the end of a CI run).
const pathFor = (name: string): string => join(tmpdir(), `meshbox-${name}-`);

// A test worker that crashes (an uncaught exception) runs no teardown and no after hook, but it
// still exits: what is left of its folders then goes.
const notRemoved = new Set<string>();
process.on('exit', () => notRemoved.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

/** A new, empty folder for whoever removes it with `removeTemporaryDirectory`; if no one does, it goes as the process exits. */
export async function makeTemporaryDirectory(name: string): Promise<string> {
  const dir = await mkdtemp(pathFor(name));
  notRemoved.add(dir);
  return dir;
}

export async function removeTemporaryDirectory(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  notRemoved.delete(dir);
}

/** A new, empty folder for test `t`, removed when the test is done, whether it passed or failed. */
export async function temporaryDirectory(t: ExecutionContext, name: string): Promise<string> {
  const dir = await makeTemporaryDirectory(name);
  t.teardown(() => removeTemporaryDirectory(dir));
  return dir;
}

/**
 * A new, empty folder for the tests of one file, removed once they are all done. Call it as
 * the file loads (at its top level): ava takes the hook that removes the folder only then.
 */
export function fileTemporaryDirectory(test: TestFn, name: string): string {
  const dir = mkdtempSync(pathFor(name));
  notRemoved.add(dir);
  test.after.always(() => removeTemporaryDirectory(dir));
  return dir;
}
