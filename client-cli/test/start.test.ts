import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { temporaryDirectory } from '../../test/support/temporary-directory.ts';
import { MAIN, runInProcess, runSubprocess } from './support/cli-fixture.ts';

const CACHE = join('meshbox', 'node-compile-cache');
const RECORD_LOADS = resolve(import.meta.dirname, 'support/record-loads.mjs');

/** How many cache entries a cache folder holds, over Node's per-version subfolders. */
async function cachedModules(folder: string): Promise<number> {
  if (!existsSync(folder)) return 0;
  let count = 0;
  for (const version of await readdir(folder)) count += (await readdir(join(folder, version))).length;
  return count;
}

test("a command keeps its compiled modules in the user's cache folder ($XDG_CACHE_HOME, else ~/.cache), and runs the same from them", async (t) => {
  const dir = await temporaryDirectory(t, 'compile-cache');
  const first = await runSubprocess(['--version'], { env: { XDG_CACHE_HOME: join(dir, 'xdg') } });
  t.is(first.code, 0, first.stderr);
  // Every TypeScript module the command loaded, not only a few.
  t.true((await cachedModules(join(dir, 'xdg', CACHE))) > 20);
  const again = await runSubprocess(['--version'], { env: { XDG_CACHE_HOME: join(dir, 'xdg') } });
  t.deepEqual(again, first);

  // A relative XDG_CACHE_HOME is not one (the XDG specification): the home folder's .cache serves.
  const home = join(dir, 'home');
  const fromHome = await runSubprocess(['--version'], { env: { HOME: home, XDG_CACHE_HOME: 'relative' } });
  t.is(fromHome.code, 0, fromHome.stderr);
  t.true((await cachedModules(join(home, '.cache', CACHE))) > 20);
  t.false(existsSync(join(dir, 'relative')));
});

test('NODE_COMPILE_CACHE puts the cache elsewhere, and NODE_DISABLE_COMPILE_CACHE=1 keeps it off', async (t) => {
  const dir = await temporaryDirectory(t, 'compile-cache');
  const elsewhere = join(dir, 'elsewhere');
  const moved = await runSubprocess(['--version'], { env: { XDG_CACHE_HOME: join(dir, 'xdg'), NODE_COMPILE_CACHE: elsewhere } });
  t.is(moved.code, 0, moved.stderr);
  t.true((await cachedModules(elsewhere)) > 20);
  t.false(existsSync(join(dir, 'xdg')));

  const off = await runSubprocess(['--version'], { env: { XDG_CACHE_HOME: join(dir, 'xdg'), NODE_DISABLE_COMPILE_CACHE: '1' } });
  t.is(off.code, 0, off.stderr);
  t.false(existsSync(join(dir, 'xdg')));
});

test('a cache folder another user could write (group or others may, as in /tmp) is not used: what it held could be run', async (t) => {
  const dir = await temporaryDirectory(t, 'compile-cache');
  for (const mode of [0o777, 0o775]) {
    const shared = join(dir, `shared-${mode.toString(8)}`);
    await mkdir(shared);
    await chmod(shared, mode); // past the umask
    const run = await runSubprocess(['--version'], { env: { XDG_CACHE_HOME: shared } });
    t.is(run.code, 0, run.stderr);
    t.false(existsSync(join(shared, 'meshbox')), mode.toString(8));
  }
  // Not made yet: judged by the folder it would be made in.
  const run = await runSubprocess(['--version'], { env: { XDG_CACHE_HOME: join(dir, 'shared-777', 'cache') } });
  t.is(run.code, 0, run.stderr);
  t.false(existsSync(join(dir, 'shared-777', 'cache')));
});

test('a cache folder that cannot be made leaves the cache off and the command working, with nothing said', async (t) => {
  const dir = await temporaryDirectory(t, 'compile-cache');
  const notAFolder = join(dir, 'file');
  await writeFile(notAFolder, 'in the way');
  const run = await runSubprocess(['--version'], { env: { XDG_CACHE_HOME: notAFolder } });
  t.is(run.code, 0);
  t.is(run.stderr, '');
  t.regex(run.stdout, /^\d+\.\d+\.\d+/);
});

/** The modules `meshbox <args>` loads, by URL. */
async function modulesLoadedBy(t: ExecutionContext, ...args: string[]): Promise<string[]> {
  const log = join(await temporaryDirectory(t, 'compile-cache'), 'loads');
  const run = await runSubprocess(args, { env: { NODE_OPTIONS: `--import=${RECORD_LOADS}`, MESHBOX_TEST_LOAD_LOG: log } });
  t.is(run.code, 0, run.stderr);
  return (await readFile(log, 'utf8')).split('\n');
}

test("a user command starts without the operator commands' code (the server's stores, ioredis); admin, serve and the full help load it", async (t) => {
  const serverCode = (url: string): boolean => url.includes('/server/src/') || url.includes('/node_modules/ioredis/');
  for (const args of [['inbox', '--help'], ['--profile', 'admin.json', 'send', '--help'], ['help', 'receive']]) {
    const loaded = await modulesLoadedBy(t, ...args);
    t.true(loaded.some((url) => url.endsWith('/client-cli/src/program.ts')), args.join(' '));
    t.deepEqual(loaded.filter(serverCode), [], args.join(' '));
  }
  for (const args of [['admin', '--help'], ['serve', '--help'], ['--help'], ['help', 'admin']]) {
    t.true((await modulesLoadedBy(t, ...args)).some(serverCode), args.join(' '));
  }
});

test("a command line whose command is no user command's gets the operator commands, whatever its other arguments: commander's suggestion of one misspelt, the full help", async (t) => {
  const cwd = await temporaryDirectory(t, 'compile-cache');
  // A misspelt `admin` before an admin subcommand whose name a user command has too (`cert`).
  const misspelt = await runInProcess(['admn', 'cert', 'list'], { cwd });
  t.is(misspelt.code, 2);
  t.regex(misspelt.stderr, /unknown command 'admn'\n\(Did you mean admin\?\)/);
  // A connection flag whose value is a user command's name names no command: the full help.
  const fullHelp = await runInProcess(['--mailbox', 'inbox', '--help'], { cwd });
  t.is(fullHelp.code, 0);
  t.regex(fullHelp.stdout, /^ {2}admin /m);
  t.regex(fullHelp.stdout, /^ {2}serve /m);
});

test('on a Node older than it needs, the command says which it needs and where the project keeps it, and exits 1 (not an import error naming none of that)', async (t) => {
  const olderNode = "Object.defineProperty(process, 'versions', { value: { ...process.versions, node: '20.19.0' } }); Object.defineProperty(process, 'version', { value: 'v20.19.0' });";
  const result = await runSubprocess(['--help'], { env: { NODE_OPTIONS: `--import=data:text/javascript,${encodeURIComponent(olderNode)}` } });
  t.is(result.code, 1);
  t.is(result.stdout, '');
  t.regex(result.stderr, /^meshbox: needs Node 24 or later, and this is v20\.19\.0; .*node_modules\/\.bin/);
});

test('output nobody reads any more (a pipe closed, as by `| head`) is dropped without a crash, and the command ends as it would have; output that cannot be written otherwise (a full disk) fails it, and goes to stderr', async (t) => {
  const closedPipe = spawn(process.execPath, [MAIN, '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
  closedPipe.stdout.destroy();
  let stderr = '';
  closedPipe.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  const [code] = (await once(closedPipe, 'exit')) as [number | null];
  t.is(code, 0, stderr);
  t.is(stderr, '');

  const fullDisk = await open('/dev/full', 'w');
  try {
    const full = spawn(process.execPath, [MAIN, '--help'], { stdio: ['ignore', fullDisk.fd, 'pipe'] });
    let said = '';
    full.stderr?.on('data', (data: Buffer) => (said += data.toString()));
    const [status] = (await once(full, 'exit')) as [number | null];
    t.is(status, 1);
    t.regex(said, /^meshbox: could not write the output \(ENOSPC[^)]*\); it follows:\nUsage: meshbox /, 'what could not be written (a sent message id, say) is not lost');
  } finally {
    await fullDisk.close();
  }
});
