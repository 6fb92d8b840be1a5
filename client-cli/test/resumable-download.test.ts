// Resumable downloads at their edges: a stop during the final check, a message gone between runs,
// a hostile or crash-left file where the partial file or its note would be.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import fsPromises, { link, mkdtemp, open, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import test from 'ava';
import type { TestServer } from '../../test/support/harness.ts';
import { MeshClient } from '../src/client/mesh-client.ts';
import { downloadFile } from '../src/transfer/download.ts';
import { continuableNames } from '../src/transfer/partial-download.ts';
import { CLAIMS_FOLDER } from '../src/transfer/receive-claims.ts';
import { noProgress, type ProgressFactory } from '../src/transfer/progress.ts';
import { connectionSettings, type MailboxFiles, runInProcess, savedIn } from './support/cli-fixture.ts';
import { type FakeHandler, prepareScriptedSetting } from './support/fake-server.ts';

const MESSAGE_ID = '20260101000000000000_ABC123';

let server: TestServer;
let work: string;
let mailbox: MailboxFiles;
const { withFakeServer, cli } = prepareScriptedSetting(test, 'meshbox-resumable-', (setting) => ({ server, work, mailbox } = setting));

function pathOf(url: string | undefined): string {
  return new URL(url ?? '', 'https://x').pathname.replace(/^\/messageexchange\/[^/]+/, '');
}

/**
 * A two-chunk message (chunk 1: `first`, chunk 2: 40 kB) served gzipped; `mode(path)` decides per request:
 * 'serve', 'break' (half the body then the connection drops), 'gone' (404) or 'corrupt' (whole, but not gzip data).
 */
function twoChunks(first: Buffer, mode: (path: string, method: string) => 'serve' | 'break' | 'gone' | 'corrupt', second = randomBytes(40_000)) {
  const fileName = 'result.bin';
  const whole = Buffer.concat([first, second]);
  const checksum = `sha256:${createHash('sha256').update(whole).digest('hex')}`;
  const gzipped = [gzipSync(first), gzipSync(second)];
  const requests: string[] = [];
  const handle: FakeHandler = (request, _body, response) => {
    const path = pathOf(request.url);
    requests.push(`${request.method} ${path}`);
    const what = mode(path, request.method ?? 'GET');
    if (what === 'gone') {
      response.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errorCode: '20', errorDescription: 'Message does not exist' }));
      return;
    }
    if (path === '/inbox') {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ messages: [MESSAGE_ID] }));
      return;
    }
    if (request.method === 'PUT') {
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      return;
    }
    const number = path.endsWith('/2') ? 2 : 1;
    // Whole, but not gzip data past its magic number (what a server that checks only that stores).
    const body = what === 'corrupt' ? Buffer.concat([Buffer.from('1f8b0800', 'hex'), Buffer.alloc(64, 0xff)]) : gzipped[number - 1]!;
    response.writeHead(number === 1 ? 206 : 200, {
      'content-type': 'application/octet-stream',
      'content-encoding': 'gzip',
      'content-length': String(body.length),
      'mex-messageid': MESSAGE_ID,
      'mex-messagetype': 'DATA',
      'mex-filename': fileName,
      'mex-chunk-range': `${number}:2`,
      'mex-total-chunks': '2',
      'mex-content-checksum': checksum,
    });
    if (request.method === 'HEAD') {
      response.end();
    } else if (what === 'break') {
      response.write(body.subarray(0, body.length / 2), () => response.socket?.destroy());
    } else {
      response.end(body);
    }
  };
  return { whole, checksum, requests, handle, first, second };
}

/** Runs `download` once with chunk 2 breaking off and no retries: chunk 1 is kept. */
async function keepChunkOne(cwd: string, first = randomBytes(50_000)) {
  const message = twoChunks(first, (path) => (path.endsWith('/2') ? 'break' : 'serve'));
  const result = await withFakeServer(message.handle, (origin) => cli(origin, ['download', MESSAGE_ID, '--retries', '0'], cwd));
  const names = continuableNames(join(cwd, 'result.bin'), MESSAGE_ID);
  if (result.code !== 1 || !(await readdir(cwd)).includes(names.note)) throw new Error(`chunk 1 was not kept: ${result.stderr}`);
  return { ...message, partial: join(cwd, names.partial), note: join(cwd, names.note), names };
}

async function bytesReadByThisProcess(): Promise<number> {
  return Number(/rchar: (\d+)/.exec(await readFile('/proc/self/io', 'utf8'))?.[1]);
}

test('a stop while a resumed download verifies the whole file ends it (it neither reads on nor saves the file)', async (t) => {
  const cwd = await mkdtemp(join(work, 'stop-verify-'));
  // An earlier run kept chunk 1: 256 MiB of zeros (sparse, no disk needed), noted as such.
  const size = 256 * 1024 * 1024;
  const zeros = Buffer.alloc(1024 * 1024);
  const second = randomBytes(40_000);
  const hash = createHash('sha256');
  for (let i = 0; i < size / zeros.length; i++) hash.update(zeros);
  hash.update(second);
  const checksum = `sha256:${hash.digest('hex')}`;
  const names = continuableNames(join(cwd, 'result.bin'), MESSAGE_ID);
  await writeFile(join(cwd, names.partial), '');
  await truncate(join(cwd, names.partial), size);
  await writeFile(join(cwd, names.note), JSON.stringify({ messageId: MESSAGE_ID, target: 'result.bin', totalChunks: 2, checksum, chunks: 1, bytes: size }));
  const handle: FakeHandler = (request, _body, response) => {
    const number = pathOf(request.url).endsWith('/2') ? 2 : 1;
    response.writeHead(number === 1 ? 206 : 200, {
      'content-type': 'application/octet-stream',
      'mex-messageid': MESSAGE_ID,
      'mex-filename': 'result.bin',
      'mex-chunk-range': `${number}:2`,
      'mex-total-chunks': '2',
      'mex-content-checksum': checksum,
    });
    // Chunk 1 is asked for its headers only (a resumed run destroys its body).
    response.end(number === 2 ? second : Buffer.alloc(0));
  };
  const stop = new AbortController();
  // The user presses Ctrl-C just as the last chunk is written, i.e. when the bar goes (progress.stop()).
  const progress: ProgressFactory = () => ({ update: () => undefined, note: () => undefined, stop: () => stop.abort() });
  const readBefore = await bytesReadByThisProcess();
  const outcome = await withFakeServer(handle, async (origin) => {
    const client = new MeshClient(connectionSettings(server, mailbox.mailbox, origin), { signal: stop.signal });
    try {
      return await downloadFile(client, { messageId: MESSAGE_ID, output: undefined, cwd, progress, overwrite: false }).then(
        () => 'saved',
        (error: Error) => `failed: ${error.name}`,
      );
    } finally {
      client.close();
    }
  });
  const read = (await bytesReadByThisProcess()) - readBefore;
  t.not(outcome, 'saved', 'the stop must end the download');
  t.true(read < size / 4, `read ${read} bytes of a ${size}-byte partial file after the stop`);
  t.false((await readdir(cwd)).includes('result.bin'));
});

test('download: a message gone (404) when the same command is run again removes the kept partial file and its note', async (t) => {
  const cwd = await mkdtemp(join(work, 'gone-download-'));
  await keepChunkOne(cwd);
  // Meanwhile the message expired, or another client of the mailbox acknowledged it.
  const gone = twoChunks(randomBytes(10), () => 'gone');
  const result = await withFakeServer(gone.handle, (origin) => cli(origin, ['download', MESSAGE_ID], cwd));
  t.is(result.code, 1);
  t.deepEqual(await readdir(cwd), []);
});

test('receive: a message whose kept chunks wait in the folder and that is gone (404) removes them', async (t) => {
  const folder = await mkdtemp(join(work, 'gone-receive-'));
  const first = twoChunks(randomBytes(50_000), (path) => (path.endsWith('/2') ? 'break' : 'serve'));
  const cut = await withFakeServer(first.handle, (origin) => cli(origin, ['receive', '.', '--retries', '0'], folder));
  t.is(cut.code, 1, cut.stderr);
  const names = continuableNames(join(folder, `${MESSAGE_ID}_result.bin`), MESSAGE_ID);
  t.deepEqual((await readdir(folder)).sort(), [CLAIMS_FOLDER, names.note, names.partial].sort(), 'chunk 1 kept, and the claim of its names');
  // The next pass lists it, but it is gone when fetched (acknowledged elsewhere, expired).
  const gone = twoChunks(randomBytes(10), (path) => (path === '/inbox' ? 'serve' : 'gone'));
  const again = await withFakeServer(gone.handle, (origin) => cli(origin, ['receive', '.'], folder));
  t.is(again.code, 0, again.stderr);
  t.deepEqual(await readdir(folder), [], 'nothing of a message that is gone is kept');
});

test('receive continues a message whose chunk 1 it kept, and removes the temporary file of a note write a crash cut short', async (t) => {
  const folder = await mkdtemp(join(work, 'continue-receive-'));
  let continuing = false;
  const message = twoChunks(randomBytes(50_000), (path) => (path.endsWith('/2') && !continuing ? 'break' : 'serve'));
  t.is((await withFakeServer(message.handle, (origin) => cli(origin, ['receive', '.', '--retries', '0'], folder))).code, 1);
  const names = continuableNames(join(folder, `${MESSAGE_ID}_result.bin`), MESSAGE_ID);
  // What a kill during the next note's write would leave beside it.
  const noteDraft = `.${names.note}.0a1b2c3d.part`;
  await writeFile(join(folder, noteDraft), '{"messageId":');
  continuing = true;
  const before = message.requests.length;
  const again = await withFakeServer(message.handle, (origin) => cli(origin, ['receive', '.'], folder));
  t.is(again.code, 0, again.stderr);
  t.deepEqual(message.requests.slice(before), ['GET /inbox', `HEAD /inbox/${MESSAGE_ID}`, `GET /inbox/${MESSAGE_ID}`, `GET /inbox/${MESSAGE_ID}/2`, `PUT /inbox/${MESSAGE_ID}/status/acknowledged`]);
  t.true((await readFile(join(folder, `${MESSAGE_ID}_result.bin`))).equals(message.whole));
  t.deepEqual((await readdir(folder)).sort(), [`${MESSAGE_ID}.json`, `${MESSAGE_ID}_result.bin`].sort());
});

test('receive says which whole chunks it keeps of a message cut short, by a failure, a stop of a single run, or a stop of --watch; it acknowledges nothing', async (t) => {
  const folder = await mkdtemp(join(work, 'kept-receive-'));
  const names = continuableNames(join(folder, `${MESSAGE_ID}_result.bin`), MESSAGE_ID);
  const kept = `the first 1 of 2 chunks (48.8 KiB) are kept: the next receive into this folder continues from chunk 2`;
  // Chunk 2 breaks off, with no retries: the message fails.
  const broken = twoChunks(randomBytes(50_000), (path) => (path.endsWith('/2') ? 'break' : 'serve'));
  const failed = await withFakeServer(broken.handle, (origin) => cli(origin, ['receive', '.', '--retries', '0'], folder));
  t.is(failed.code, 1);
  t.true(failed.stderr.startsWith('meshbox: chunk 2 could not be read: '), failed.stderr);
  t.true(failed.stderr.endsWith(` (message ${MESSAGE_ID} stays in the inbox; ${kept})\nmeshbox: 1 message not received (see above)\n`), failed.stderr);
  t.deepEqual((await readdir(folder)).sort(), [CLAIMS_FOLDER, names.note, names.partial].sort());

  // The user stops the run while it continues with chunk 2 (a single run; then --watch, whose handshake is answered).
  for (const watch of [false, true]) {
    const stop = new AbortController();
    const message = twoChunks(broken.first, () => 'serve', broken.second);
    const result = await withFakeServer(
      (request, body, response) => {
        if (request.method === 'POST') response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        else if (pathOf(request.url).endsWith('/2')) stop.abort();
        else message.handle(request, body, response);
      },
      (origin) => runInProcess(['--profile', mailbox.profile, '--url', origin, 'receive', '.', ...(watch ? ['--watch'] : [])], { cwd: folder, stopSignal: stop.signal }),
    );
    t.is(result.code, watch ? 0 : 130, result.stderr);
    t.is(result.stderr, `meshbox: stopped by SIGINT: message ${MESSAGE_ID} stays in the inbox; ${kept}\n`);
    t.false(message.requests.some((request) => request.startsWith('PUT')), 'nothing acknowledged');
    t.deepEqual((await readdir(folder)).sort(), [CLAIMS_FOLDER, names.note, names.partial].sort());
  }
});

test("a chunk answered 404/410 of a message the server still describes (a chunk lost from its storage) is a failure, not a message gone: download and receive keep chunk 1, acknowledge nothing, exit 1 and say so", async (t) => {
  const lost = (path: string, method: string) => (path.endsWith('/2') && method === 'GET' ? 'gone' : 'serve');
  const names = (folder: string, output: string) => continuableNames(join(folder, output), MESSAGE_ID);
  const unavailable = `the server still lists message ${MESSAGE_ID} but cannot serve all of it: Message does not exist (HTTP 404, MESH code 20); its operators should look`;

  const cwd = await mkdtemp(join(work, 'lost-download-'));
  const download = await withFakeServer(twoChunks(randomBytes(50_000), lost).handle, (origin) => cli(origin, ['download', MESSAGE_ID, '--retries', '0'], cwd));
  t.is(download.code, 1);
  t.true(download.stderr.startsWith(`meshbox: ${unavailable}`), download.stderr);
  t.regex(download.stderr, /the first 1 of 2 chunks \(48\.8 KiB\) are kept/);
  t.deepEqual((await readdir(cwd)).sort(), [names(cwd, 'result.bin').note, names(cwd, 'result.bin').partial].sort());

  const folder = await mkdtemp(join(work, 'lost-receive-'));
  const message = twoChunks(randomBytes(50_000), lost);
  const received = await withFakeServer(message.handle, (origin) => cli(origin, ['receive', '.', '--retries', '0'], folder));
  t.is(received.code, 1, 'not skipped as gone');
  t.true(received.stderr.includes(unavailable), received.stderr);
  t.true(received.stderr.endsWith('meshbox: 1 message not received (see above)\n'), received.stderr);
  t.false(message.requests.some((request) => request.startsWith('PUT')), 'nothing acknowledged');
  const kept = names(folder, `${MESSAGE_ID}_result.bin`);
  t.deepEqual((await readdir(folder)).sort(), [CLAIMS_FOLDER, kept.note, kept.partial].sort(), 'chunk 1 kept for the next pass');
});

test('a FIFO planted at the note path does not hang the download (the note is not trusted, the download starts afresh)', async (t) => {
  const cwd = await mkdtemp(join(work, 'fifo-'));
  const fifo = join(cwd, continuableNames(join(cwd, 'result.bin'), MESSAGE_ID).note);
  execFileSync('mkfifo', [fifo]);
  const message = twoChunks(randomBytes(50_000), () => 'serve');
  const outcome = await withFakeServer(message.handle, async (origin) => {
    const client = new MeshClient(connectionSettings(server, mailbox.mailbox, origin));
    try {
      const run = downloadFile(client, { messageId: MESSAGE_ID, output: undefined, cwd, progress: noProgress, overwrite: false }).then(
        () => 'saved',
        (error: Error) => `failed: ${error.message}`,
      );
      // Not a timing bound: a download of 50 KB from a local server is long done by then, however loaded the host
      // (5 s was not enough on one); a blocked open() never returns.
      const first = await Promise.race([run, sleep(60_000, undefined, { ref: false }).then(() => 'hung')]);
      if (first === 'hung') {
        // Release the blocked open() so that the test ends.
        const writer = await open(fifo, 'w');
        await writer.close();
        await run;
      }
      return first;
    } finally {
      client.close();
    }
  });
  t.is(outcome, 'saved');
});

test('a partial file hard-linked to the saved target (a crash between link and unlink) is not truncated and written into', async (t) => {
  const cwd = await mkdtemp(join(work, 'hardlink-'));
  const { whole, partial, note, first, second } = await keepChunkOne(cwd);
  // The download completed: the target is saved.
  const saved = join(cwd, 'result.bin');
  await writeFile(saved, whole);
  // The state a crash (or a power cut before the folder was flushed) leaves right after
  // moveIntoPlace's link(): the partial file is the target's second name, the note still there.
  await rm(partial);
  await link(saved, partial);
  t.true((await readdir(cwd)).includes(note.slice(cwd.length + 1)));
  // The user sees "already exists ... --overwrite to replace it" and runs it again with --overwrite;
  // this time chunk 2 breaks off again.
  const broken = twoChunks(first, (path) => (path.endsWith('/2') ? 'break' : 'serve'), second);
  const result = await withFakeServer(broken.handle, (origin) => cli(origin, ['download', MESSAGE_ID, '--overwrite', '--retries', '0'], cwd));
  t.is(result.code, 1);
  t.is((await stat(saved)).size, whole.length, 'the saved file, which a program may already be reading, is left whole');
});

// File-system faults this machine cannot produce for real (a file system without hard links, a
// file an antivirus scanner holds) are injected by replacing a function of node:fs/promises
// (syncBuiltinESMExports updates the ESM bindings every module imported). Those tests are serial,
// and ava runs serial tests before the others: no other test sees the replacement.

type Patchable = 'link' | 'rm' | 'readdir' | 'open' | 'copyFile';
const originals = { link: fsPromises.link, rm: fsPromises.rm, readdir: fsPromises.readdir, open: fsPromises.open, copyFile: fsPromises.copyFile };

/** Replaces fs/promises' `name` for every module (ESM bindings included) until `restore`. */
function patch<K extends Patchable>(name: K, replacement: (typeof originals)[K]): void {
  (fsPromises as Record<Patchable, unknown>)[name] = replacement;
  syncBuiltinESMExports();
}

function restore(): void {
  Object.assign(fsPromises, originals);
  syncBuiltinESMExports();
}

test.afterEach.always(restore);

function errno(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

/** A message of `chunks` chunks (1 or 2); chunk 2 (and the message's HEAD) 404 when `chunk2Gone`: the message went meanwhile. */
function servedMessage(chunks: 1 | 2, chunk2Gone = false) {
  const parts = chunks === 2 ? [randomBytes(50_000), randomBytes(40_000)] : [randomBytes(50_000)];
  const whole = Buffer.concat(parts);
  const handle: FakeHandler = (request, _body, response) => {
    const path = new URL(request.url ?? '', 'https://x').pathname;
    const number = path.endsWith('/2') ? 2 : 1;
    // Gone: HEAD says so too.
    if (chunk2Gone && (number === 2 || request.method === 'HEAD')) {
      response.writeHead(404, { 'content-type': 'application/json' }).end('{"errorCode":"20","errorDescription":"Message does not exist"}');
      return;
    }
    const body = gzipSync(parts[number - 1]!);
    response
      .writeHead(number < chunks ? 206 : 200, {
        'content-type': 'application/octet-stream',
        'content-encoding': 'gzip',
        'content-length': String(body.length),
        'mex-messageid': MESSAGE_ID,
        'mex-filename': 'result.bin',
        'mex-chunk-range': `${number}:${chunks}`,
        'mex-total-chunks': String(chunks),
        'mex-content-checksum': `sha256:${createHash('sha256').update(whole).digest('hex')}`,
      })
      .end(body);
  };
  return { whole, handle };
}

async function downloadOutcome(handle: FakeHandler, cwd: string): Promise<string> {
  return withFakeServer(handle, async (origin) => {
    const client = new MeshClient(connectionSettings(server, mailbox.mailbox, origin), { retries: 0 });
    try {
      await downloadFile(client, { messageId: MESSAGE_ID, output: undefined, cwd, progress: noProgress, overwrite: false });
      return 'saved';
    } catch (error) {
      return `failed: ${(error as Error).message}`;
    } finally {
      client.close();
    }
  });
}

// No hard links (FAT/exFAT USB disks, many SMB/CIFS mounts): link() fails with EPERM.
test.serial('on a file system without hard links a download of several chunks is saved, as one of a single chunk is', async (t) => {
  patch('link', async () => {
    throw errno('EPERM', 'operation not permitted, link');
  });
  const single = servedMessage(1);
  const cwd1 = await mkdtemp(join(work, 'nolinks-1-'));
  t.is(await downloadOutcome(single.handle, cwd1), 'saved', 'one chunk: moveIntoPlace falls back to a copy');
  t.true((await readFile(join(cwd1, 'result.bin'))).equals(single.whole));

  const several = servedMessage(2);
  const cwd2 = await mkdtemp(join(work, 'nolinks-2-'));
  t.is(await downloadOutcome(several.handle, cwd2), 'saved', 'two chunks: the new download lock must not need link()');
  restore();
  t.true((await readFile(join(cwd2, 'result.bin')).catch(() => Buffer.alloc(0))).equals(several.whole));
});

// A copy is not on disk until flushed: a power cut after the acknowledgement would lose a
// message that will not come again.
test.serial('on a file system without hard links the payload and <ID>.json copied into place are flushed before the message is acknowledged', async (t) => {
  patch('link', async () => {
    throw errno('EPERM', 'operation not permitted, link');
  });
  const copied: string[] = [];
  const flushed: string[] = [];
  patch('copyFile', async (from, to, mode) => {
    await originals.copyFile(from, to, mode);
    copied.push(String(to));
  });
  const open = originals.open;
  patch('open', (async (path: Parameters<typeof open>[0], ...rest: unknown[]) => {
    const handle = await (open as (...args: unknown[]) => ReturnType<typeof open>)(path, ...rest);
    if (!copied.includes(String(path))) return handle;
    const sync = handle.sync.bind(handle);
    const flush = async (): Promise<void> => {
      await sync();
      flushed.push(String(path));
    };
    return Object.assign(handle, { sync: flush });
  }) as typeof open);
  const folder = await mkdtemp(join(work, 'nolinks-flushed-'));
  const message = twoChunks(randomBytes(1_000), () => 'serve');
  let flushedByTheAcknowledgement: string[] = [];
  const result = await withFakeServer(
    (request, body, response) => {
      if (request.method === 'PUT') flushedByTheAcknowledgement = [...flushed];
      message.handle(request, body, response);
    },
    (origin) => cli(origin, ['receive', '.', '--retries', '0'], folder),
  );
  t.is(result.code, 0, result.stderr);
  t.deepEqual(copied.map((path) => basename(path)).sort(), [`${MESSAGE_ID}.json`, `${MESSAGE_ID}_result.bin`].sort());
  t.deepEqual(flushedByTheAcknowledgement.sort(), copied.sort());
});

// Without hard links, a file written under a temporary name cannot be linked into place, which
// fails when the name is taken; a rename would replace what took it.
test.serial("on a file system without hard links a file that appears at <ID>.json during the download is left as it is: the message is neither saved nor acknowledged", async (t) => {
  patch('link', async () => {
    throw errno('EPERM', 'operation not permitted, link');
  });
  const folder = await mkdtemp(join(work, 'nolinks-appears-'));
  const description = join(folder, `${MESSAGE_ID}.json`);
  const users = '{"the user\'s": "own file"}\n';
  const message = twoChunks(randomBytes(1_000), () => 'serve');
  const result = await withFakeServer(
    (request, body, response) => {
      if (pathOf(request.url).endsWith('/2')) writeFileSync(description, users);
      message.handle(request, body, response);
    },
    (origin) => cli(origin, ['receive', '.', '--retries', '0'], folder),
  );
  t.is(result.code, 1);
  t.regex(result.stderr, new RegExp(`${description} appeared during the download and is not meshbox's earlier save of message ${MESSAGE_ID}`));
  t.is(await readFile(description, 'utf8'), users);
  t.false(message.requests.some((request) => request.startsWith('PUT')), 'not acknowledged');
  // Nor is it taken for an earlier save of the message by the next receive.
  const again = await withFakeServer(message.handle, (origin) => cli(origin, ['receive', '.', '--retries', '0'], folder));
  t.is(again.code, 1);
  t.regex(again.stderr, new RegExp(`${description} is in the folder and is not meshbox's earlier save of message ${MESSAGE_ID}`));
  t.is(await readFile(description, 'utf8'), users);
});

// The payload goes in place before its .json: a .json that then cannot be written leaves the
// payload, which the next receive must know for its own, however it was put there (a link, or
// a copy where there are no hard links).
for (const hardLinks of [true, false]) {
  test.serial(`a payload put in place whose .json then fails (a full disk) is replaced by the next receive, which saves the message and acknowledges it (${hardLinks ? 'with' : 'without'} hard links)`, async (t) => {
    if (!hardLinks) {
      patch('link', async () => {
        throw errno('EPERM', 'operation not permitted, link');
      });
    }
    const folder = await mkdtemp(join(work, 'description-fails-'));
    const descriptionDraft = join(folder, `.${MESSAGE_ID}.json.`);
    let full = true;
    const open = originals.open;
    patch('open', (async (path: Parameters<typeof open>[0], ...rest: unknown[]) => {
      if (full && String(path).startsWith(descriptionDraft)) throw errno('ENOSPC', 'no space left on device, open');
      return (open as (...args: unknown[]) => ReturnType<typeof open>)(path, ...rest);
    }) as typeof open);
    const message = twoChunks(randomBytes(1_000), () => 'serve');
    const receive = () => withFakeServer(message.handle, (origin) => cli(origin, ['receive', '.', '--retries', '0'], folder));
    const first = await receive();
    t.is(first.code, 1);
    t.regex(first.stderr, new RegExp(`ENOSPC.*message ${MESSAGE_ID} stays in the inbox`));
    t.deepEqual(await savedIn(folder), [`${MESSAGE_ID}_result.bin`], 'the payload in place, no .json');
    t.false(message.requests.some((request) => request.startsWith('PUT')), 'not acknowledged');
    full = false;
    const again = await receive();
    t.is(again.code, 0, again.stderr);
    t.true((await readFile(join(folder, `${MESSAGE_ID}_result.bin`))).equals(message.whole));
    t.like(JSON.parse(await readFile(join(folder, `${MESSAGE_ID}.json`), 'utf8')), { payloadFile: `${MESSAGE_ID}_result.bin` });
    t.true(message.requests.some((request) => request.startsWith('PUT')), 'acknowledged');
  });
}

// A receive folder keeps what it received: a year of results is over a million files, which a
// watcher reading the folder on every pass would read once a second or a minute.
test.serial('receive --watch reads its folder on its first pass, and again only while a message is failing', async (t) => {
  const folder = await mkdtemp(join(work, 'watch-reads-'));
  let reads = 0;
  const readdir = originals.readdir;
  patch('readdir', (async (path: string, options?: unknown) => {
    if (String(path) === folder) reads += 1;
    return readdir(path, options as never);
  }) as typeof readdir);
  const stop = new AbortController();
  let listings = 0;
  const readsWhenListed: number[] = [];
  // Listed on three passes, its chunk 2 breaking off each time; then gone (acknowledged elsewhere), and three quiet passes.
  const message = twoChunks(randomBytes(1_000), (path) => (path.endsWith('/2') ? 'break' : listings > 3 && path !== '/inbox' ? 'gone' : 'serve'));
  const result = await withFakeServer(
    (request, body, response) => {
      if (request.method === 'POST') return void response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      if (pathOf(request.url) === '/inbox') {
        listings += 1;
        readsWhenListed.push(reads);
        if (listings === 7) stop.abort();
        if (listings > 3) return void response.writeHead(200, { 'content-type': 'application/json' }).end('{"messages":[]}');
      }
      message.handle(request, body, response);
    },
    (origin) => runInProcess(['--profile', mailbox.profile, '--url', origin, 'receive', '.', '--watch', '--interval', '1', '--retries', '0'], { cwd: folder, stopSignal: stop.signal }),
  );
  t.is(result.code, 0, result.stderr);
  // Read on the first pass, on each while the message failed, and twice on the one it went in
  // (the second to remove its kept chunks); not after.
  t.deepEqual(readsWhenListed, [1, 2, 3, 4, 5, 5, 5]);
  t.deepEqual(await readdir(folder), [], 'the chunks kept of the message gone are removed');
});

// A disk that fills up as the download writes (another writer, a quota, --min-free 0): what was
// kept would only hold the disk full, and the same command would fail the same way again.
test.serial('a download whose disk fills up keeps nothing, says the disk is full and to make room', async (t) => {
  const cwd = await mkdtemp(join(work, 'full-'));
  const probe = await open(join(cwd, 'probe'), 'w');
  const fileHandle = Object.getPrototypeOf(probe) as { writev: (...args: unknown[]) => Promise<unknown> };
  await probe.close();
  await rm(join(cwd, 'probe'));
  const writev = fileHandle.writev;
  // Chunk 1 goes to disk; chunk 2, written after it, finds no room.
  fileHandle.writev = function (this: unknown, ...args: unknown[]) {
    if (Number(args[1]) > 0) return Promise.reject(errno('ENOSPC', 'no space left on device, write'));
    return writev.apply(this, args);
  };
  try {
    t.is(await downloadOutcome(servedMessage(2).handle, cwd), `failed: the disk of ${cwd} is full (ENOSPC): nothing of the message is kept; make room, then run the command again`);
  } finally {
    fileHandle.writev = writev;
  }
  t.deepEqual(await readdir(cwd), [], 'no partial file, note or lock left holding the disk');
});

// A cleanup that fails (Windows: EBUSY/EPERM from an antivirus scanner holding the file) must not
// skip the unlock: in a long-running process (receive --watch) the message's lock would be held by
// this very process for good.
test.serial('a failed cleanup still releases the download lock: the same process can download the message again', async (t) => {
  const cwd = await mkdtemp(join(work, 'cleanup-'));
  const original = originals.rm;
  let failed = false;
  let noteRemovals = 0;
  patch('rm', async (path, options) => {
    // The first removal of the note is the fresh start's (no note yet); the second the cleanup after the failure.
    if (String(path).includes('.meshbox-download-') && String(path).endsWith('.chunks') && ++noteRemovals === 2) {
      failed = true;
      throw errno('EBUSY', `resource busy or locked, unlink '${String(path)}'`);
    }
    return original(path, options);
  });
  // Chunk 2 is gone: nothing is worth keeping, so the partial file and its note are removed -- the note's removal fails.
  const first = await downloadOutcome(servedMessage(2, true).handle, cwd);
  t.regex(first, /^failed: /);
  t.true(failed, 'the fault was injected');
  restore();
  t.log('left after the first run:', await readdir(cwd));

  const again = await downloadOutcome(servedMessage(2).handle, cwd);
  t.is(again, 'saved', 'the lock of the first run must have been released');
});

test("a chunk that arrives whole but does not decompress (a sender's broken gzip) fails the download at once, keeping nothing: kept, a zip bomb's first chunks would hold the disk until the message expires", async (t) => {
  const cwd = await mkdtemp(join(work, 'undecodable-'));
  const message = twoChunks(randomBytes(50_000), (path) => (path.endsWith('/2') ? 'corrupt' : 'serve'));
  const result = await withFakeServer(message.handle, (origin) => cli(origin, ['download', MESSAGE_ID, '--retries', '3'], cwd));
  t.is(result.code, 1);
  t.regex(result.stderr, /chunk 2 does not decompress \(.+\): the sender's gzip data is broken; nothing was saved/);
  t.notRegex(result.stderr, /are kept/);
  t.deepEqual(await readdir(cwd), []);
  t.is(message.requests.filter((request) => request === `GET /inbox/${MESSAGE_ID}/2`).length, 1, 'not fetched again: the server holds it so');
});
