import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { startServerProcess } from './support/server-process.ts';
import { temporaryDirectory } from './support/temporary-directory.ts';

// The suite removes what it makes in the system's temporary folder, also when a test fails or
// its worker crashes. Serial: a test here points this process's temporary folder elsewhere.

/** Points os.tmpdir() at a folder of the test's own for as long as the test runs. */
async function ownTemporaryFolder(t: ExecutionContext): Promise<string> {
  const own = await temporaryDirectory(t, 'own-tmp');
  const before = process.env.TMPDIR;
  process.env.TMPDIR = own;
  t.teardown(() => {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
  });
  return own;
}

test.serial('a temporary folder is removed when its test fails', async (t) => {
  let made = '';
  const attempt = await t.try(async (failing) => {
    made = await temporaryDirectory(failing, 'failing');
    failing.fail('failed on purpose');
  });
  attempt.discard();
  t.false(attempt.passed);
  t.not(made, '');
  t.false(existsSync(made));
});

test.serial('a temporary folder no one removed goes when its process crashes (a test worker with an uncaught exception runs no teardown)', async (t) => {
  const own = await ownTemporaryFolder(t);
  const helpers = pathToFileURL(resolve(import.meta.dirname, 'support/temporary-directory.ts')).href;
  const crashing = `import { makeTemporaryDirectory } from '${helpers}'; await makeTemporaryDirectory('crashing'); throw new Error('crashed on purpose');`;
  const crashed = spawnSync(process.execPath, ['--input-type=module', '--eval', crashing], { env: process.env, encoding: 'utf8' });
  t.is(crashed.status, 1);
  t.regex(crashed.stderr, /crashed on purpose/);
  t.deepEqual(await readdir(own), []);
});

test.serial('a server process refused at start leaves no folder behind', async (t) => {
  const own = await ownTemporaryFolder(t);
  await t.throwsAsync(startServerProcess({ MESHBOX_TLS_CERT: '/nonexistent/server.crt' }), { message: /did not start/ });
  t.deepEqual(await readdir(own), []);
});
