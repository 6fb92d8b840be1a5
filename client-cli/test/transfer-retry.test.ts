import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { appendFile, mkdtemp, readdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import test from 'ava';
import type { TestServer } from '../../test/support/harness.ts';
import { MeshClient } from '../src/client/mesh-client.ts';
import { CONNECT_TIMEOUT } from '../src/client/errors.ts';
import { HttpsTransport, mayRetryAfter, retryAfterMs } from '../src/client/transport.ts';
import { DownloadIncompleteError, downloadFile, TargetExistsError } from '../src/transfer/download.ts';
import { continuableNames } from '../src/transfer/partial-download.ts';
import { CLAIMS_FOLDER } from '../src/transfer/receive-claims.ts';
import { noProgress } from '../src/transfer/progress.ts';
import { connectionSettings, MAIN, type MailboxFiles, runInProcess } from './support/cli-fixture.ts';
import { type FakeHandler, prepareScriptedSetting } from './support/fake-server.ts';

// A scripted stand-in for the server (the real one never fails on cue), trusted by the
// profiles because its certificate comes from the test CA.

const MESSAGE_ID = '20260101000000000000_ABC123';

let server: TestServer;
let work: string;
let mailbox: MailboxFiles;
const { withFakeServer, cli } = prepareScriptedSetting(test, 'meshbox-retry-test-', (setting) => ({ server, work, mailbox } = setting));

test('a send stopped mid-upload (Ctrl-C, SIGTERM) says which message it left incomplete and how to finish it, terminal or not', async (t) => {
  const cwd = await mkdtemp(join(work, 'stop-'));
  await writeFile(join(cwd, 'payload.bin'), randomBytes(3000));
  const stop = new AbortController();
  const result = await withFakeServer(
    (request, _body, response) => {
      if (new URL(request.url ?? '', 'https://x').pathname.endsWith('/outbox')) {
        response.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ message_id: MESSAGE_ID }));
      } else {
        // Chunk 2 is on its way when the user stops the run; its answer never comes.
        stop.abort();
      }
    },
    (origin) =>
      runInProcess(['--profile', mailbox.profile, '--url', origin, 'send', 'payload.bin', '--to', 'X26OT001', '--workflow', 'WF', '--chunk-size', '1000'], {
        cwd,
        stopSignal: stop.signal,
      }),
  );
  t.is(result.code, 130);
  t.is(result.stdout, '');
  t.regex(result.stderr, new RegExp(`^meshbox: stopped by SIGINT: message ${MESSAGE_ID} is incomplete; the server keeps its chunks for a while: finish it with\n  meshbox --profile \\S+ --url \\S+ send payload\\.bin --to X26OT001 --workflow WF --chunk-size 1000 --resume ${MESSAGE_ID}\n$`));
});

/** Bytes this process has read from files and sockets so far (Linux). */
async function bytesReadByThisProcess(): Promise<number> {
  return Number(/rchar: (\d+)/.exec(await readFile('/proc/self/io', 'utf8'))?.[1]);
}

test('send --checksum stopped while it hashes the file stops reading it, and says the message was not started', async (t) => {
  const cwd = await mkdtemp(join(work, 'checksum-stop-'));
  const size = 512 * 1024 * 1024;
  // Sparse: as long as a large file to read, without the disk it would take.
  await writeFile(join(cwd, 'large.bin'), '');
  await truncate(join(cwd, 'large.bin'), size);
  const stop = new AbortController();
  stop.abort();
  const requests: string[] = [];
  const readBefore = await bytesReadByThisProcess();
  const result = await withFakeServer(
    (request, _body, response) => {
      requests.push(`${request.method} ${request.url}`);
      response.writeHead(500).end();
    },
    (origin) =>
      runInProcess(['--profile', mailbox.profile, '--url', origin, 'send', 'large.bin', '--to', 'X26OT001', '--workflow', 'WF', '--checksum'], {
        cwd,
        stopSignal: stop.signal,
      }),
  );
  const read = (await bytesReadByThisProcess()) - readBefore;
  t.is(result.code, 130);
  t.deepEqual(requests, []);
  t.is(result.stderr, 'meshbox: stopped by SIGINT: the message was not started: nothing of it went to the server\n');
  t.true(read < size / 4, `read ${read} bytes of a ${size}-byte file`);
});

test('a new connection the server closes unanswered at once may be a refused certificate, and is said so; one closed after carrying the request for seconds is not', async (t) => {
  const cwd = await mkdtemp(join(work, 'closed-'));
  await writeFile(join(cwd, 'payload.bin'), randomBytes(3000));
  const closedAfter = (ms: number) =>
    withFakeServer(
      (request) => setTimeout(() => request.socket.destroy(), ms),
      (origin) => cli(origin, ['send', 'payload.bin', '--to', 'X26OT001', '--workflow', 'WF', '--retries', '0'], cwd),
    );
  const atOnce = await closedAfter(0);
  t.is(atOnce.code, 1);
  t.regex(atOnce.stderr, /^meshbox: the connection to \S+ broke: .*\(the server closed a new connection unanswered: if it keeps doing so, it may be refusing this certificate/);
  // Past the five seconds within which a refusing server closes a connection it has just made.
  const late = await closedAfter(6000);
  t.is(late.code, 1);
  t.regex(late.stderr, /^meshbox: the connection to \S+ broke: /);
  t.notRegex(late.stderr, /certificate/);
});

test('a wait of seconds before a retry is said at a terminal (the server refusing for now, or not answering), and nothing is said otherwise', async (t) => {
  const cwd = await mkdtemp(join(work, 'retry-wait-'));
  const countWith = (tty: boolean) => {
    let asked = 0;
    return withFakeServer(
      (_request, _body, response) => {
        asked += 1;
        // A certificate past its failed logins is answered so until its minute ends.
        if (asked === 1) response.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' }).end('{}');
        else response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count: 3 }));
      },
      (origin) => runInProcess(['--profile', mailbox.profile, '--url', origin, 'count'], { cwd, tty }),
    );
  };
  const atTerminal = await countWith(true);
  t.is(atTerminal.code, 0, atTerminal.stderr);
  t.is(atTerminal.stdout, '3\n');
  t.is(atTerminal.stderr, 'meshbox: the server answered Too Many Requests (HTTP 429); trying again in 1 s\n');
  const piped = await countWith(false);
  t.is(piped.code, 0);
  t.is(piped.stderr, '');
  // Chunk 2 refused for now, while the download's bar is drawn: the line goes above the bar (taken down and drawn again), not into it.
  const { whole, handle } = twoChunkMessage(() => false);
  let chunk2Asked = 0;
  const download = await withFakeServer(
    (request, body, response) => {
      if (request.url?.endsWith('/2') && ++chunk2Asked === 1) response.writeHead(503, { 'retry-after': '1', 'content-type': 'application/json' }).end('{}');
      else handle(request, body, response);
    },
    (origin) => runInProcess(['--profile', mailbox.profile, '--url', origin, 'download', MESSAGE_ID, '-o', 'r.bin'], { cwd, tty: true }),
  );
  t.is(download.code, 0, download.stderr);
  t.regex(download.stderr, /\[2Kmeshbox: the server answered Service Unavailable \(HTTP 503\); trying again in 1 s\n.*downloading \[/s, 'the bar cleared, the line written, the bar drawn again below it');
  t.true((await readFile(join(cwd, 'r.bin'))).equals(whole));
});

test('a connection never made (refused, no route to the host or its network, its name not resolved for now, the connect timeout) lets a send be tried again, as any request; one that broke once made lets only what is harmless to repeat be', (t) => {
  for (const code of ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', CONNECT_TIMEOUT]) {
    t.true(mayRetryAfter('same-token', code), code);
    t.true(mayRetryAfter('idempotent', code), code);
  }
  for (const code of ['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED']) {
    t.false(mayRetryAfter('same-token', code), code);
    t.true(mayRetryAfter('idempotent', code), code);
  }
  // No such host is the settings' mistake, not the network's for now; a body over its bound is no network's.
  for (const code of ['ENOTFOUND', undefined]) t.false(mayRetryAfter('idempotent', code), String(code));
});

test('Retry-After is read as seconds or as an HTTP date', (t) => {
  t.is(retryAfterMs('3'), 3000);
  t.is(retryAfterMs(new Date(10_000).toUTCString(), 4000), 6000);
  t.is(retryAfterMs(undefined), undefined);
  t.is(retryAfterMs('soon'), undefined);
});

test('a chunk upload is retried after a 500 and a 429 (waiting its Retry-After) with a fresh copy; a 501 is not, and says how to resume', async (t) => {
  const payload = randomBytes(3000);
  const cwd = await mkdtemp(join(work, 'send-'));
  await writeFile(join(cwd, 'payload.bin'), payload);
  const received: { path: string; range: string; body: Buffer; at: number }[] = [];
  let typedOrigin = '';
  const result = await withFakeServer(
    (request, body, response) => {
      const path = new URL(request.url ?? '', 'https://x').pathname.replace(/^\/messageexchange\/[^/]+/, '');
      received.push({ path, range: String(request.headers['mex-chunk-range']), body, at: Date.now() });
      const attempts = received.filter((entry) => entry.path === path).length;
      if (path === '/outbox') {
        response.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ message_id: MESSAGE_ID }));
      } else if (path.endsWith('/2') && attempts === 1) {
        response.writeHead(500, { 'content-type': 'text/plain' }).end('oops');
      } else if (path.endsWith('/2') && attempts === 2) {
        response.writeHead(429, { 'content-type': 'text/plain', 'retry-after': '1' }).end('slow down');
      } else if (path.endsWith('/2')) {
        response.writeHead(202).end();
      } else {
        response.writeHead(501, { 'content-type': 'text/plain' }).end('not here');
      }
    },
    (origin) => {
      typedOrigin = origin;
      return cli(origin, ['send', 'payload.bin', '--to', 'X26OT001', '--workflow', 'WF', '--chunk-size', '1000'], cwd);
    },
  );

  t.is(result.code, 1);
  t.deepEqual(
    received.map((entry) => `${entry.path} ${entry.range}`),
    ['/outbox 1:3', `/outbox/${MESSAGE_ID}/2 2:3`, `/outbox/${MESSAGE_ID}/2 2:3`, `/outbox/${MESSAGE_ID}/2 2:3`, `/outbox/${MESSAGE_ID}/3 3:3`],
    'chunk 2 three times, chunk 3 (501) once',
  );
  for (const attempt of received.filter((entry) => entry.path.endsWith('/2'))) t.true(attempt.body.equals(payload.subarray(1000, 2000)));
  const [, , second, third] = received;
  t.true((third?.at ?? 0) - (second?.at ?? 0) >= 950, 'waited for Retry-After');
  t.is(
    result.stderr,
    `meshbox: chunk 3 of 3 failed: Not Implemented: not here (HTTP 501)\n` +
      `message ${MESSAGE_ID} is incomplete; the server keeps its chunks for a while: finish it with\n` +
      `  meshbox --profile ${mailbox.profile} --url ${typedOrigin} send payload.bin --to X26OT001 --workflow WF --chunk-size 1000 --resume ${MESSAGE_ID}\n`,
  );
});

/** The requests a fake server saw, as `METHOD path`. */
function seen(requests: readonly { method: string; path: string }[]): string[] {
  return requests.map((entry) => `${entry.method} ${entry.path}`);
}

/** A two-chunk gzip message as a fake server serves it; `breakOff` decides when chunk 2 drops half-way. */
function twoChunkMessage(breakOff: (attemptAtChunk2: number) => boolean) {
  const parts = [randomBytes(50_000), randomBytes(40_000)];
  const whole = Buffer.concat(parts);
  const gzipped = parts.map((part) => gzipSync(part));
  const requests: { method: string; path: string; acceptEncoding: string }[] = [];
  const handle: FakeHandler = (request, _body, response) => {
    const path = new URL(request.url ?? '', 'https://x').pathname.replace(/^\/messageexchange\/[^/]+/, '');
    requests.push({ method: request.method ?? '', path, acceptEncoding: String(request.headers['accept-encoding']) });
    const number = path.endsWith('/2') ? 2 : 1;
    const body = gzipped[number - 1] ?? Buffer.alloc(0);
    response.writeHead(number === 1 ? 206 : 200, {
      'content-type': 'application/octet-stream',
      'content-encoding': 'gzip',
      'content-length': String(body.length),
      'mex-messageid': MESSAGE_ID,
      'mex-filename': 'result.bin',
      'mex-chunk-range': `${number}:2`,
      'mex-total-chunks': '2',
      'mex-content-checksum': `sha256:${createHash('sha256').update(whole).digest('hex')}`,
    });
    if (number === 2 && breakOff(requests.filter((entry) => entry.path === path).length)) {
      // Half the chunk, then the connection drops.
      response.write(body.subarray(0, body.length / 2), () => response.socket?.destroy());
      return;
    }
    response.end(body);
  };
  return { whole, requests, handle };
}

test('a download whose chunk breaks off part-way fetches that chunk again and still verifies the checksum', async (t) => {
  const { whole, requests, handle } = twoChunkMessage((attempt) => attempt === 1);
  const cwd = await mkdtemp(join(work, 'get-'));
  const result = await withFakeServer(handle, (origin) => cli(origin, ['download', MESSAGE_ID, '--json'], cwd));

  t.is(result.code, 0, result.stderr);
  // A HEAD first: the target is checked before the download begins.
  t.deepEqual(seen(requests), [`HEAD /inbox/${MESSAGE_ID}`, `GET /inbox/${MESSAGE_ID}`, `GET /inbox/${MESSAGE_ID}/2`, `GET /inbox/${MESSAGE_ID}/2`]);
  t.true(requests.filter((entry) => entry.method === 'GET').every((entry) => entry.acceptEncoding === 'gzip'));
  t.like(JSON.parse(result.stdout), { chunks: 2, bytes: whole.length, verifiedChecksum: `sha256:${createHash('sha256').update(whole).digest('hex')}` });
  t.true((await readFile(join(cwd, 'result.bin'))).equals(whole));
  t.deepEqual(await readdir(cwd), ['result.bin']);
});

test('a download refused for the file at its target is refused before it begins: only the message\'s headers are asked for', async (t) => {
  const { requests, handle } = twoChunkMessage(() => false);
  const cwd = await mkdtemp(join(work, 'taken-'));
  await writeFile(join(cwd, 'result.bin'), 'theirs');
  const result = await withFakeServer(handle, (origin) => cli(origin, ['download', MESSAGE_ID], cwd));
  t.is(result.code, 1);
  t.regex(result.stderr, /result\.bin already exists and was left as it is/);
  t.deepEqual(seen(requests), [`HEAD /inbox/${MESSAGE_ID}`], 'no chunk asked for (none read from storage, no download audited)');
  t.is(await readFile(join(cwd, 'result.bin'), 'utf8'), 'theirs');
});

test('a HEAD the server fails (503) is the download\'s failure, once through its retries; one refused for the message (404) leaves the GET to say why', async (t) => {
  const failing: string[] = [];
  const unavailable = await withFakeServer(
    (request, _body, response) => {
      failing.push(`${request.method} ${request.url}`);
      response.writeHead(503, { 'content-type': 'application/json' }).end(request.method === 'HEAD' ? undefined : '{"detail":[]}');
    },
    async (origin) => cli(origin, ['download', MESSAGE_ID, '--retries', '2'], await mkdtemp(join(work, 'down-'))),
  );
  t.is(unavailable.code, 1);
  t.regex(unavailable.stderr, /HTTP 503/);
  t.deepEqual(failing.map((line) => line.split(' ')[0]), ['HEAD', 'HEAD', 'HEAD'], 'the retries once, not again for a GET');

  const notThere: string[] = [];
  const missing = await withFakeServer(
    (request, _body, response) => {
      notThere.push(request.method ?? '');
      response.writeHead(404, { 'content-type': 'application/json' }).end(request.method === 'HEAD' ? undefined : JSON.stringify({ detail: [{ event: 'RECEIVE', code: '20', msg: 'Message does not exist' }] }));
    },
    async (origin) => cli(origin, ['download', MESSAGE_ID], await mkdtemp(join(work, 'down-'))),
  );
  t.is(missing.code, 1);
  t.is(missing.stderr, 'meshbox: Message does not exist (HTTP 404, MESH code 20)\n');
  t.deepEqual(notThere, ['HEAD', 'GET']);
});

test('a stop during the wait before a broken-off chunk is fetched again ends the download at once, keeping only the whole chunk 1', async (t) => {
  const stop = new AbortController();
  const { requests, handle } = twoChunkMessage(() => true);
  const cwd = await mkdtemp(join(work, 'stop-'));
  const error = await withFakeServer(handle, async (origin) => {
    const client = new MeshClient(connectionSettings(server, mailbox.mailbox, origin), { retryDelayMs: 600_000, signal: stop.signal });
    // Read (once built) only where the client, having seen the break and cut its file back, begins
    // its wait: ten minutes, which only the stop can cut short (else ava's timeout fails the test).
    // The stop comes once that wait has begun.
    Object.defineProperty(client, 'retryDelayMs', {
      get: () => {
        setImmediate(() => stop.abort());
        return 600_000;
      },
    });
    return t.throwsAsync(downloadFile(client, { messageId: MESSAGE_ID, output: undefined, cwd, progress: noProgress, overwrite: false }));
  });

  t.true(error instanceof DownloadIncompleteError);
  t.is((error?.cause as Error | undefined)?.name, 'AbortError');
  t.deepEqual((error as DownloadIncompleteError).kept, { chunks: 1, bytes: 50_000 });
  t.deepEqual(seen(requests), [`HEAD /inbox/${MESSAGE_ID}`, `GET /inbox/${MESSAGE_ID}`, `GET /inbox/${MESSAGE_ID}/2`]);
  const { partial, note } = continuableNames(join(cwd, 'result.bin'), MESSAGE_ID);
  t.deepEqual((await readdir(cwd)).sort(), [partial, note].sort(), 'the partial file cut back to chunk 1, and its note; no lock');
  t.is((await readFile(join(cwd, partial))).length, 50_000);
});

test('a download whose chunk 2 breaks off past its retries keeps chunk 1 and says so; the same command then fetches only chunk 2 and verifies the whole file', async (t) => {
  // Chunk 2 breaks off on its first two requests: the first run's, with one retry.
  const { whole, requests, handle } = twoChunkMessage((attempt) => attempt <= 2);
  const cwd = await mkdtemp(join(work, 'continue-'));
  const { partial, note } = continuableNames(join(cwd, 'result.bin'), MESSAGE_ID);
  const first = await withFakeServer(handle, (origin) => cli(origin, ['download', MESSAGE_ID, '--retries', '1'], cwd));
  t.is(first.code, 1);
  t.regex(first.stderr, /^meshbox: chunk 2 could not be read: .+\nthe first 1 of 2 chunks \(48\.8 KiB\) are kept: the same command run again continues from chunk 2\n$/);
  t.deepEqual((await readdir(cwd)).sort(), [partial, note].sort());

  const second = await withFakeServer(handle, (origin) => cli(origin, ['download', MESSAGE_ID, '--json'], cwd));
  t.is(second.code, 0, second.stderr);
  t.deepEqual(seen(requests).slice(4), [`HEAD /inbox/${MESSAGE_ID}`, `GET /inbox/${MESSAGE_ID}`, `GET /inbox/${MESSAGE_ID}/2`], 'chunk 1 only for its headers, then chunk 2');
  t.like(JSON.parse(second.stdout), { chunks: 2, bytes: whole.length, continuedAfterChunk: 1, verifiedChecksum: `sha256:${createHash('sha256').update(whole).digest('hex')}` });
  t.true((await readFile(join(cwd, 'result.bin'))).equals(whole));
  t.deepEqual(await readdir(cwd), ['result.bin'], 'the partial file, its note and its lock are gone');
});

/** A folder where a download of the two-chunk message kept chunk 1, with the handler that serves the message. */
async function keptChunkOne() {
  const message = twoChunkMessage((attempt) => attempt === 1);
  const cwd = await mkdtemp(join(work, 'kept-'));
  const names = continuableNames(join(cwd, 'result.bin'), MESSAGE_ID);
  const kept = await withFakeServer(message.handle, (origin) => cli(origin, ['download', MESSAGE_ID, '--retries', '0'], cwd));
  if (kept.code !== 1 || !(await readdir(cwd)).includes(names.note)) throw new Error(`chunk 1 was not kept: ${kept.stderr}`);
  return { ...message, cwd, partial: join(cwd, names.partial), note: join(cwd, names.note) };
}

test('a kept partial file whose bytes were changed fails the checksum of the whole file, and nothing of it is kept', async (t) => {
  const { handle, cwd, partial } = await keptChunkOne();
  const bytes = await readFile(partial);
  bytes[0] = bytes[0]! ^ 0xff;
  await writeFile(partial, bytes);

  const result = await withFakeServer(handle, (origin) => cli(origin, ['download', MESSAGE_ID], cwd));
  t.is(result.code, 1);
  t.regex(result.stderr, /^meshbox: checksum mismatch: the message says sha256:[0-9a-f]{64}, the data received is sha256:[0-9a-f]{64}; nothing was saved\n$/);
  t.deepEqual(await readdir(cwd), []);
});

test('a note that claims more than its partial file holds, or another message, is not trusted: the download starts afresh', async (t) => {
  for (const change of [(note: Record<string, unknown>) => ({ ...note, bytes: 60_000 }), (note: Record<string, unknown>) => ({ ...note, messageId: '20260101000000000000_FFFFFF' })]) {
    const { whole, requests, handle, cwd, note } = await keptChunkOne();
    await writeFile(note, JSON.stringify(change(JSON.parse(await readFile(note, 'utf8')) as Record<string, unknown>)));
    const before = requests.length;

    const result = await withFakeServer(handle, (origin) => cli(origin, ['download', MESSAGE_ID, '--json'], cwd));
    t.is(result.code, 0, result.stderr);
    t.like(JSON.parse(result.stdout), { continuedAfterChunk: 0, bytes: whole.length });
    t.deepEqual(seen(requests.slice(before)), [`HEAD /inbox/${MESSAGE_ID}`, `GET /inbox/${MESSAGE_ID}`, `GET /inbox/${MESSAGE_ID}/2`]);
    t.true((await readFile(join(cwd, 'result.bin'))).equals(whole));
    t.deepEqual(await readdir(cwd), ['result.bin']);
  }
});

test('a second download of the same message to the same file is refused while the first runs, which then completes', async (t) => {
  const { whole, handle } = twoChunkMessage(() => false);
  let chunk2Asked = () => {};
  const asked = new Promise<void>((resolve) => (chunk2Asked = resolve));
  let answerChunk2: (() => void) | undefined;
  const cwd = await mkdtemp(join(work, 'twice-'));
  await withFakeServer(
    (request, body, response) => {
      // The first download's chunk 2 waits until the second download has been refused.
      if (request.url?.endsWith('/2') && !answerChunk2) {
        answerChunk2 = () => handle(request, body, response);
        chunk2Asked();
      } else {
        handle(request, body, response);
      }
    },
    async (origin) => {
      const first = cli(origin, ['download', MESSAGE_ID], cwd);
      await asked;
      const second = await cli(origin, ['download', MESSAGE_ID], cwd);
      t.is(second.code, 1);
      t.regex(
        second.stderr,
        new RegExp(
          `^meshbox: another download \\(\\S+ ${process.pid}, host and process\\) is downloading message ${MESSAGE_ID} to \\S+/result\\.bin: ` +
            'wait for it to end \\(remove \\S+\\.lock if no download of that host and process is running\\)\n$',
        ),
      );
      answerChunk2?.();
      const done = await first;
      t.is(done.code, 0, done.stderr);
    },
  );
  t.true((await readFile(join(cwd, 'result.bin'))).equals(whole));
  t.deepEqual(await readdir(cwd), ['result.bin']);
});

test('a file that appears at the target as the last chunk comes is kept, and so is the whole message: the same command with --overwrite saves it, fetching chunk 1 only for its headers', async (t) => {
  const { whole, requests, handle } = twoChunkMessage(() => false);
  const cwd = await mkdtemp(join(work, 'race-'));
  const target = join(cwd, 'result.bin');
  const { partial, note } = continuableNames(target, MESSAGE_ID);
  const result = await withFakeServer(
    (request, body, response) => {
      // Another program saves a file under the same name while the last chunk is on its way.
      if (request.url?.endsWith('/2')) void writeFile(target, 'theirs').then(() => handle(request, body, response));
      else handle(request, body, response);
    },
    (origin) => cli(origin, ['download', MESSAGE_ID], cwd),
  );
  t.is(result.code, 1);
  t.is(
    result.stderr,
    `meshbox: ${target} appeared during the download and was left as it is\n` +
      'all 2 chunks (87.9 KiB) are kept, the whole message: the same command run again with --overwrite saves it without fetching it again\n',
  );
  t.is(await readFile(target, 'utf8'), 'theirs');
  t.deepEqual((await readdir(cwd)).sort(), ['result.bin', partial, note].sort(), 'the partial file and its note stay; no lock');
  t.like(JSON.parse(await readFile(join(cwd, note), 'utf8')), { chunks: 2, bytes: whole.length, totalChunks: 2 });

  // Without --overwrite the same command is refused at the start, as before, saying what --overwrite does; what is kept stays.
  const refused = await withFakeServer(handle, (origin) => cli(origin, ['download', MESSAGE_ID], cwd));
  t.is(refused.code, 1);
  t.is(
    refused.stderr,
    `meshbox: ${target} already exists and was left as it is; the whole message, kept by an earlier run, is beside it: ` +
      'the same command with --overwrite puts it in its place without fetching it again\n',
  );
  t.deepEqual((await readdir(cwd)).sort(), ['result.bin', partial, note].sort());

  const before = requests.length;
  const saved = await withFakeServer(handle, (origin) => cli(origin, ['download', MESSAGE_ID, '--overwrite', '--json'], cwd));
  t.is(saved.code, 0, saved.stderr);
  t.deepEqual(
    requests.slice(before).map((entry) => entry.path),
    [`/inbox/${MESSAGE_ID}`],
    'chunk 1 only for its headers (its body is not read), no other chunk',
  );
  t.like(JSON.parse(saved.stdout), { chunks: 2, bytes: whole.length, continuedAfterChunk: 2, verifiedChecksum: `sha256:${createHash('sha256').update(whole).digest('hex')}` });
  t.true((await readFile(target)).equals(whole));
  t.deepEqual(await readdir(cwd), ['result.bin'], 'the partial file, its note and its lock are gone');
});

test('a message kept whole whose partial file was changed fails the checksum over the whole file when saved, and nothing of it is kept', async (t) => {
  const { handle } = twoChunkMessage(() => false);
  const cwd = await mkdtemp(join(work, 'race-changed-'));
  const target = join(cwd, 'result.bin');
  const { partial } = continuableNames(target, MESSAGE_ID);
  const kept = await withFakeServer(
    (request, body, response) => {
      if (request.url?.endsWith('/2')) void writeFile(target, 'theirs').then(() => handle(request, body, response));
      else handle(request, body, response);
    },
    (origin) => cli(origin, ['download', MESSAGE_ID], cwd),
  );
  t.is(kept.code, 1, kept.stderr);
  const bytes = await readFile(join(cwd, partial));
  bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
  await writeFile(join(cwd, partial), bytes);

  const result = await withFakeServer(handle, (origin) => cli(origin, ['download', MESSAGE_ID, '--overwrite'], cwd));
  t.is(result.code, 1);
  t.regex(result.stderr, /^meshbox: checksum mismatch: the message says sha256:[0-9a-f]{64}, the data received is sha256:[0-9a-f]{64}; nothing was saved\n$/);
  t.is(await readFile(target, 'utf8'), 'theirs');
  t.deepEqual(await readdir(cwd), ['result.bin']);
});

test('a file that appears at the target during the download of a message of one chunk is kept, and nothing of the download is (a rerun fetches that chunk in any case)', async (t) => {
  const payload = randomBytes(100_000);
  const cwd = await mkdtemp(join(work, 'race-one-'));
  const target = join(cwd, 'result.bin');
  const result = await withFakeServer(
    (request, _body, response) => {
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(payload.length), 'mex-messageid': MESSAGE_ID, 'mex-filename': 'result.bin' });
      if (request.method === 'HEAD') return void response.end();
      response.write(payload.subarray(0, 1000));
      // Once the download writes its temporary file (the target was free when it began), another program saves a file under the same name.
      void (async () => {
        for (let attempt = 0; attempt < 200 && !(await readdir(cwd)).some((name) => name.endsWith('.part')); attempt++) await sleep(10);
        await writeFile(target, 'theirs');
        response.end(payload.subarray(1000));
      })();
    },
    (origin) => cli(origin, ['download', MESSAGE_ID], cwd),
  );
  t.is(result.code, 1);
  t.is(result.stderr, `meshbox: ${target} appeared during the download and was left as it is: give -o with another name (or --overwrite to replace it)\n`);
  t.is(await readFile(target, 'utf8'), 'theirs');
  t.deepEqual(await readdir(cwd), ['result.bin']);
});

test('a download kept whole whose note could not say so still tells the user to rerun with --overwrite: the file there refuses any other rerun', (t) => {
  const cause = new TargetExistsError('/x/result.bin', true);
  t.is(
    new DownloadIncompleteError(cause, { chunks: 1, bytes: 1024 }, 2).keptNote('the same command run again'),
    'the first 1 of 2 chunks (1 KiB) are kept: the same command run again with --overwrite continues from chunk 2',
  );
  // receive has no --overwrite: it replaces no file it did not save, and goes on once the file is moved away.
  t.is(
    new DownloadIncompleteError(cause, { chunks: 2, bytes: 2048 }, 2).keptNote('the next receive', 'the next receive, once that file is moved away,'),
    'all 2 chunks (2 KiB) are kept, the whole message: the next receive, once that file is moved away, saves it without fetching it again',
  );
});

test('what a download kept is told as the first chunks and the next, or as the whole message', (t) => {
  const cause = new Error('chunk 3 could not be read');
  t.is(new DownloadIncompleteError(cause, { chunks: 2, bytes: 2048 }, 5).keptNote('the next receive'), 'the first 2 of 5 chunks (2 KiB) are kept: the next receive continues from chunk 3');
  t.is(
    new DownloadIncompleteError(cause, { chunks: 5, bytes: 5120 }, 5).keptNote('the next receive'),
    'all 5 chunks (5 KiB) are kept, the whole message: the next receive saves it without fetching it again',
  );
});

/**
 * An inbox of one message, whose download sends half its body and then nothing more (a run stays
 * at it until stopped) unless `complete`; an acknowledgement loses its connection, or gets `acknowledgement`.
 */
function oneMessageInbox(requests: string[], complete = false, acknowledgement?: { readonly status: number; readonly body: object }): FakeHandler {
  const payload = randomBytes(100_000);
  return (request, _body, response) => {
    const path = new URL(request.url ?? '', 'https://x').pathname.replace(/^\/messageexchange\/[^/]+/, '');
    requests.push(`${request.method} ${path}`);
    if (path === '/inbox') {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ messages: [MESSAGE_ID] }));
    } else if (path === `/inbox/${MESSAGE_ID}`) {
      response.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': String(payload.length),
        'mex-messageid': MESSAGE_ID,
        'mex-messagetype': 'DATA',
        'mex-filename': 'large.bin',
      });
      if (request.method === 'HEAD') response.end();
      else if (complete) response.end(payload);
      else response.write(payload.subarray(0, payload.length / 2));
    } else if (request.method === 'PUT') {
      if (acknowledgement) response.writeHead(acknowledgement.status, { 'content-type': 'application/json' }).end(JSON.stringify(acknowledgement.body));
      else response.socket?.destroy();
    } else {
      response.writeHead(404).end();
    }
  };
}

/**
 * Runs the CLI as its own process against an inbox whose download never ends, sends it `signal` once a
 * temporary file has appeared in `folder` (the download is under way), and returns how it ended.
 */
async function interrupted(args: readonly string[], folder: string, signal: NodeJS.Signals) {
  const requests: string[] = [];
  const ended = await withFakeServer(oneMessageInbox(requests), async (origin) => {
    const run = spawn(process.execPath, [MAIN, '--profile', mailbox.profile, '--url', origin, ...args], {
      cwd: folder,
      env: { PATH: process.env.PATH },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    run.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
    // 'close', not 'exit': what it wrote to stderr may still be in the pipe when it has exited.
    const exited = once(run, 'close');
    // Bounded waiting, not timing: until the download has its temporary file (starting a CLI
    // process has taken over 30 s on a loaded CI run).
    for (let attempt = 0; attempt < 1800 && !(await readdir(folder)).some((name) => name.endsWith('.part')); attempt++) await sleep(50);
    const started = (await readdir(folder)).some((name) => name.endsWith('.part'));
    run.kill(signal);
    const [code, killedBy] = await exited;
    return { started, code, killedBy, stderr };
  });
  return { ...ended, requests, left: await readdir(folder) };
}

// SIGHUP: the operator's terminal went (an ssh session dropped on a flaky link).
for (const [signal, exitCode] of [['SIGINT', 130], ['SIGHUP', 129]] as const) {
  test(`download stopped by ${signal} ends its request, removes its temporary file and exits ${exitCode}`, async (t) => {
    const cwd = await mkdtemp(join(work, 'interrupt-'));
    const result = await interrupted(['download', MESSAGE_ID], cwd, signal);
    t.true(result.started, 'the download was under way');
    t.is(result.killedBy, null, 'it handled the signal rather than being killed by it');
    t.is(result.code, exitCode);
    t.is(result.stderr, `meshbox: stopped by ${signal}: nothing was saved\n`);
    t.deepEqual(result.left, []);
  });
}

test('receive stopped by SIGTERM in the middle of a message acknowledges nothing, leaves no file and exits 143', async (t) => {
  const into = await mkdtemp(join(work, 'interrupt-'));
  const result = await interrupted(['receive', '.'], into, 'SIGTERM');
  t.true(result.started, 'the download was under way');
  t.is(result.killedBy, null, 'it handled the signal rather than being killed by it');
  t.is(result.code, 143);
  t.is(result.stderr, 'meshbox: stopped by SIGTERM: a message not yet acknowledged stays in the inbox and is saved again next time\n');
  t.deepEqual(result.left, [CLAIMS_FOLDER], 'no temporary file, and the lock released; the claim of its names stays until it is acknowledged');
  t.false(result.requests.some((request) => request.startsWith('PUT')), 'nothing acknowledged');
});

test('a message saved whose acknowledgement fails is reported as saved but not acknowledged, not as left in the inbox', async (t) => {
  const into = await mkdtemp(join(work, 'unacknowledged-'));
  const requests: string[] = [];
  const result = await withFakeServer(oneMessageInbox(requests, true), (origin) => cli(origin, ['receive', into, '--retries', '1'], work));
  t.is(result.code, 1);
  t.deepEqual((await readdir(into)).sort(), [CLAIMS_FOLDER, `${MESSAGE_ID}.json`, `${MESSAGE_ID}_large.bin`].sort(), 'its files are there, and its claim, for the next pass to save them again');
  const [problem, summary] = result.stderr.trim().split('\n');
  t.true(
    problem!.startsWith(`meshbox: message ${MESSAGE_ID} was saved (${join(into, `${MESSAGE_ID}_large.bin`)}) but not acknowledged: the connection to https://127.0.0.1:`),
    problem,
  );
  // On a loaded machine the kept-alive connection may have gone idle too long: the acknowledgement then goes on a new one, and the line adds a hint.
  t.regex(problem!, /; so it is delivered again, and saved again under the same names, next time( \(the server closed a new connection unanswered: [^)]+\)\))?$/);
  t.is(summary, 'meshbox: 1 message saved but not acknowledged (see above)');
  t.is(requests.filter((request) => request.startsWith('PUT')).length, 2, 'the acknowledgement was tried, and retried');
});

test('a message saved whose acknowledgement is answered 410 (it expired meanwhile) is reported as one that will not come again, whose sender must be told', async (t) => {
  const into = await mkdtemp(join(work, 'expired-'));
  const requests: string[] = [];
  const gone = { status: 410, body: { errorEvent: 'SEND', errorCode: 'Message already accepted', errorDescription: 'Message no longer available for download', messageID: MESSAGE_ID } };
  const result = await withFakeServer(oneMessageInbox(requests, true, gone), (origin) => cli(origin, ['receive', into], work));
  t.is(result.code, 1);
  t.deepEqual(await readdir(into), [`${MESSAGE_ID}.json`, `${MESSAGE_ID}_large.bin`], 'its claim gone with it: it comes no more');
  const [problem] = result.stderr.trim().split('\n');
  t.regex(problem!, /was saved \(.*\) but not acknowledged: Message no longer available for download \(HTTP 410.*\); the server no longer holds it to acknowledge, so it will not come again: it expired first, and its sender is told it was not delivered \(tell them it was received\)/);
  t.notRegex(result.stderr, /delivered again/);
  t.is(requests.filter((request) => request.startsWith('PUT')).length, 1, 'not retried');
});

test('receive --watch validates the mailbox (the MESH handshake) before its first pass, not before every pass', async (t) => {
  const stop = new AbortController();
  const requests: string[] = [];
  const cwd = await mkdtemp(join(work, 'watch-handshake-'));
  const result = await withFakeServer(
    (request, _body, response) => {
      const path = new URL(request.url ?? '', 'https://x').pathname.replace(/^\/messageexchange\/[^/]+/, '');
      requests.push(`${request.method} ${path || '/'}`);
      if (request.method === 'POST' && path === '') {
        response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ messages: [] }));
      if (requests.filter((entry) => entry === 'GET /inbox').length === 2) stop.abort();
    },
    (origin) => runInProcess(['--profile', mailbox.profile, '--url', origin, 'receive', '.', '--watch', '--interval', '1'], { cwd, stopSignal: stop.signal }),
  );
  t.is(result.code, 0, result.stderr);
  t.deepEqual(requests, ['POST /', 'GET /inbox', 'GET /inbox']);
});

test('receive --watch whose handshake the server refuses says that it was the handshake (mailbox validation) that failed, not the inbox', async (t) => {
  const stop = new AbortController();
  let handshakes = 0;
  const cwd = await mkdtemp(join(work, 'watch-handshake-refused-'));
  const result = await withFakeServer(
    (request, _body, response) => {
      const path = new URL(request.url ?? '', 'https://x').pathname.replace(/^\/messageexchange\/[^/]+/, '');
      if (request.method === 'POST' && path === '') {
        handshakes += 1;
        if (handshakes >= 2) stop.abort();
        response.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errorDescription: 'Not found' }));
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ messages: [] }));
    },
    (origin) => runInProcess(['--profile', mailbox.profile, '--url', origin, 'receive', '.', '--watch', '--interval', '1'], { cwd, stopSignal: stop.signal }),
  );
  t.is(result.code, 0, result.stderr);
  t.regex(result.stderr, /^meshbox: the mailbox validation \(MESH handshake\) failed: .*HTTP 404.* \(the inbox is looked at again in 1 s\)$/m);
});

test('a one-chunk send whose connection breaks may have been delivered: it says so, and how to check, before any resend', async (t) => {
  const cwd = await mkdtemp(join(work, 'send-'));
  await writeFile(join(cwd, 'result.hl7'), 'MSH|');
  const send = (origin: string, extra: readonly string[]) => cli(origin, ['send', 'result.hl7', '--to', 'X26OT001', '--workflow', 'WF', ...extra], cwd);
  const cutOff: FakeHandler = (_request, _body, response) => response.socket?.destroy();
  // Tracking (asked for the local id before the send and after it) knows no message carrying it.
  const sendCutOff: FakeHandler = (request, body, response) =>
    request.method === 'POST' ? cutOff(request, body, response) : response.writeHead(404, { 'content-type': 'application/json' }).end('{}');
  const [tracked, untracked] = await withFakeServer(sendCutOff, async (origin) => [await send(origin, ['--local-id', 'lab 7']), await send(origin, [])]);

  t.is(tracked.code, 1);
  t.regex(
    tracked.stderr,
    /^meshbox: the connection to https:\/\/127\.0\.0\.1:\d+ broke: socket hang up\nthe message may have been delivered all the same \(recorded before its answer was lost or went wrong\): tracking knows no message with local id 'lab 7' yet, but the server may still record it \(up to 16 minutes after the send\): before sending it again, check then with\n  meshbox track --local-id 'lab 7'\n$/,
  );
  t.is(untracked.code, 1);
  t.regex(untracked.stderr, /before sending it again, check with the recipient \(give --local-id next time, and meshbox track --local-id <it> will tell\)\n$/);

  const closed = await withFakeServer(cutOff, async (origin) => origin);
  const refused = await send(closed, ['--local-id', 'lab 7']);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /^meshbox: cannot reach https:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED [^\n]+\n$/, 'a refused connection sent nothing: no doubt to raise');
});

/**
 * A server that answers a one-chunk send 500, and whose tracking records it (`recorded`) from then
 * on, as a server that failed after storing the message would, accepted unless `status` says
 * otherwise; before the send, a message carrying the local id already (`earlier`), if any.
 */
function failsAfterRecording(recorded: boolean, earlier?: string, status: Record<string, unknown> = { status: 'accepted' }): { readonly handle: FakeHandler; readonly requests: string[] } {
  const requests: string[] = [];
  let sent = false;
  const tracking = (id: string) => ({ message_id: id, recipient: 'X26OT001', workflow_id: 'WF', filename: 'result.hl7', ...status });
  const handle: FakeHandler = (request, _body, response) => {
    const path = new URL(request.url ?? '', 'https://x').pathname.replace(/^\/messageexchange\/[^/]+/, '');
    const query = new URL(request.url ?? '', 'https://x').searchParams;
    requests.push(`${request.method} ${path}`);
    const answer = (status: number, body: unknown) => response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (request.method === 'POST') {
      sent = true;
      return answer(500, { errorDescription: 'the store failed' });
    }
    if (path.startsWith('/outbox/tracking/')) {
      const carrying = sent && recorded ? 'NEW_ONE' : earlier;
      return carrying === undefined ? answer(404, { errorDescription: 'no such local id' }) : answer(200, { messageId: carrying });
    }
    if (path === '/outbox/tracking') return answer(200, tracking(query.get('messageID') ?? ''));
    return answer(404, {});
  };
  return { handle, requests };
}

test('a one-chunk send answered 500 may have been delivered: it says so and how to check, and is not repeated at a server that does not take repeats', async (t) => {
  const cwd = await mkdtemp(join(work, 'send-'));
  await writeFile(join(cwd, 'result.hl7'), 'MSH|');
  const send = (origin: string, extra: readonly string[]) => cli(origin, ['send', 'result.hl7', '--to', 'X26OT001', '--workflow', 'WF', ...extra], cwd);
  const server = failsAfterRecording(false);
  const [tracked, untracked] = await withFakeServer(server.handle, async (origin) => [await send(origin, ['--local-id', 'lab-9']), await send(origin, [])]);
  t.is(tracked.code, 1);
  t.is(
    tracked.stderr,
    'meshbox: the store failed (HTTP 500)\nthe message may have been delivered all the same (recorded before its answer was lost or went wrong): ' +
      'tracking knows no message with local id lab-9 yet, ' +
      'but the server may still record it (up to 16 minutes after the send): before sending it again, check then with\n  meshbox track --local-id lab-9\n',
  );
  t.is(untracked.code, 1);
  t.regex(untracked.stderr, /^meshbox: the store failed \(HTTP 500\)\nthe message may have been delivered all the same \(recorded before its answer was lost or went wrong\): before sending it again, check with the recipient/);
  t.is(server.requests.filter((request) => request === 'POST /outbox').length, 2, 'one try each');
});

test('a one-chunk send answered 500 whose message tracking finds by its local id was sent: exit 0, its id printed, and stderr says why', async (t) => {
  const cwd = await mkdtemp(join(work, 'send-'));
  await writeFile(join(cwd, 'result.hl7'), 'MSH|');
  // An earlier message carried the local id before: not this send's, and not taken for it.
  const server = failsAfterRecording(true, 'EARLIER_ONE');
  const result = await withFakeServer(server.handle, (origin) => cli(origin, ['send', 'result.hl7', '--to', 'X26OT001', '--workflow', 'WF', '--local-id', 'lab-9'], cwd));
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout, 'NEW_ONE\n');
  t.is(result.stderr, 'meshbox: the store failed (HTTP 500); but tracking finds message NEW_ONE with local id lab-9 recorded: it was sent (do not send it again)\n');

  const before = failsAfterRecording(false, 'EARLIER_ONE');
  const notYet = await withFakeServer(before.handle, (origin) => cli(origin, ['send', 'result.hl7', '--to', 'X26OT001', '--workflow', 'WF', '--local-id', 'lab-9'], cwd));
  t.is(notYet.code, 1, 'the message that carried the local id before the send is not taken for it');
  t.regex(notYet.stderr, /tracking knows no message with local id lab-9 yet/);
});

test('a one-chunk send answered 500 whose message tracking finds recorded but failed since (MESH\'s error, undeliverable) or in a status not known: exit 1, saying it was sent and what the server reports', async (t) => {
  const cwd = await mkdtemp(join(work, 'send-'));
  await writeFile(join(cwd, 'result.hl7'), 'MSH|');
  const send = (status: Record<string, unknown>) => {
    const server = failsAfterRecording(true, undefined, status);
    return withFakeServer(server.handle, (origin) => cli(origin, ['send', 'result.hl7', '--to', 'X26OT001', '--workflow', 'WF', '--local-id', 'lab-9'], cwd));
  };
  const found = 'meshbox: the store failed (HTTP 500); but tracking finds message NEW_ONE with local id lab-9 recorded, which the server reports';
  const failed = await send({ status: 'error', status_success: false });
  t.is(failed.code, 1);
  t.is(failed.stdout, '');
  t.is(failed.stderr, `${found} error: it was sent, and will not be delivered now (sending the file again makes a new message)\n`);
  const undeliverable = await send({ status: 'undeliverable', status_code: '14', status_event: 'SEND', status_description: 'Message not collected by recipient after 5 days' });
  t.is(undeliverable.code, 1);
  t.is(undeliverable.stderr, `${found} undeliverable (code 14, SEND: Message not collected by recipient after 5 days): it was sent, and will not be delivered now (sending the file again makes a new message)\n`);
  const unknown = await send({ status: 'held' });
  t.is(unknown.code, 1);
  t.is(unknown.stderr, `${found} held: it was sent, and what became of it is for meshbox track NEW_ONE to tell (sending the file again makes a new message)\n`);
});

test('a one-chunk send whose connection is never made (TCP taken, no TLS answer) sent nothing: retried, then "cannot reach", no doubt raised', async (t) => {
  const cwd = await mkdtemp(join(work, 'send-'));
  await writeFile(join(cwd, 'result.hl7'), 'MSH|');
  // A black hole: connections are accepted and never answered, not even the TLS handshake.
  const connections: Socket[] = [];
  const silent = createNetServer((socket) => connections.push(socket.on('error', () => {})));
  await new Promise<void>((listening) => silent.listen(0, '127.0.0.1', listening));
  try {
    const origin = `https://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const result = await cli(origin, ['send', 'result.hl7', '--to', 'X26OT001', '--workflow', 'WF', '--local-id', 'lab 8', '--timeout', '1', '--retries', '1'], cwd);
    t.is(result.code, 1);
    t.regex(result.stderr, /^meshbox: cannot reach https:\/\/127\.0\.0\.1:\d+: no connection within 1000 ms\n$/, 'nothing went: no doubt to raise');
    t.is(connections.length, 2, 'tried again: a send never made cannot be delivered twice');
  } finally {
    for (const socket of connections) socket.destroy();
    silent.close();
  }
});

test('a file that changes during a send stops it, without suggesting a resume', async (t) => {
  const cwd = await mkdtemp(join(work, 'send-'));
  const file = join(cwd, 'growing.log');
  await writeFile(file, randomBytes(3000));
  const result = await withFakeServer(
    (request, _body, response) => {
      // Someone appends to the file while chunk 1 is on its way.
      void appendFile(file, 'one more line\n').then(() => {
        const body = request.url?.endsWith('/outbox') ? JSON.stringify({ message_id: MESSAGE_ID }) : '';
        response.writeHead(202, { 'content-type': 'application/json' }).end(body);
      });
    },
    (origin) => cli(origin, ['send', 'growing.log', '--to', 'X26OT001', '--workflow', 'WF', '--chunk-size', '1000'], cwd),
  );
  t.is(result.code, 1);
  t.is(result.stderr, `meshbox: chunk 2 of 3 failed: ${file} changed while it was being sent (it was 3000 bytes, now 3014): send it again once it is complete\n`);
});

/**
 * Answers with `body` as JSON, its Content-Length announced; on the attempts `cutOff` picks,
 * sends half of it and then drops the connection (or, with `stall`, sends nothing more), and
 * `onCut` hears when that half has gone out.
 */
function jsonCutOff(body: unknown, cutOff: (attempt: number) => boolean, { stall = false, onCut = () => {} } = {}) {
  const requests: string[] = [];
  const handle: FakeHandler = (request, _body, response) => {
    requests.push(`${request.method} ${new URL(request.url ?? '', 'https://x').pathname.replace(/^\/messageexchange(\/(?!_ping)[^/]+)?/, '')}`);
    const text = Buffer.from(JSON.stringify(body));
    response.writeHead(request.method === 'POST' ? 202 : 200, { 'content-type': 'application/json', 'content-length': String(text.length) });
    if (!cutOff(requests.length)) {
      response.end(text);
      return;
    }
    response.write(text.subarray(0, text.length / 2), () => {
      if (!stall) response.socket?.destroy();
      onCut();
    });
  };
  return { requests, handle };
}

/** Runs `use` with a client of the scripted mailbox against `origin`. */
async function withClient<T>(origin: string, options: { readonly retries?: number; readonly idleTimeoutMs?: number; readonly retryDelayMs?: number; readonly signal?: AbortSignal }, use: (client: MeshClient) => Promise<T>): Promise<T> {
  const { idleTimeoutMs, ...clientOptions } = options;
  const settings = connectionSettings(server, mailbox.mailbox, origin);
  const client = new MeshClient(idleTimeoutMs ? { ...settings, idleTimeoutMs } : settings, { retryDelayMs: 10, ...clientOptions });
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

test('an inbox listing whose answer is cut off part-way is asked again, like a dropped connection', async (t) => {
  const { requests, handle } = jsonCutOff({ messages: [MESSAGE_ID] }, (attempt) => attempt === 1);
  const ids = await withFakeServer(handle, (origin) => withClient(origin, {}, (client) => client.listInbox()));
  t.deepEqual(ids, [MESSAGE_ID]);
  t.deepEqual(requests, ['GET /inbox', 'GET /inbox']);
});

test('a tracking answer that stalls part-way (the idle timeout) is asked again', async (t) => {
  const { requests, handle } = jsonCutOff({ message_id: MESSAGE_ID, status: 'accepted' }, (attempt) => attempt === 1, { stall: true });
  // Not shorter: on a loaded machine (2 s was seen) the attempts could time out before their answers arrive, the first then
  // retried as a dropped connection whatever becomes of a stalled body, the second failing.
  const tracking = await withFakeServer(handle, (origin) => withClient(origin, { idleTimeoutMs: 5000 }, (client) => client.track(MESSAGE_ID)));
  t.is(tracking.status, 'accepted');
  t.deepEqual(requests, ['GET /outbox/tracking', 'GET /outbox/tracking']);
});

test('an answer cut off at every attempt fails once the retries are spent, saying the connection closed before the whole answer arrived', async (t) => {
  const { requests, handle } = jsonCutOff({ count: 3 }, () => true);
  const error = await withFakeServer(handle, (origin) => withClient(origin, { retries: 2 }, (client) => t.throwsAsync(client.count())));
  t.is(error?.message, 'the server answered HTTP 200, but the connection closed before the whole answer arrived');
  t.is(requests.length, 3, 'the first attempt and two retries');
});

test('a one-chunk send whose answer (its message id) is cut off part-way is not sent again to a server whose _ping does not say sends are idempotent: it has taken the message', async (t) => {
  const { requests, handle } = jsonCutOff({ message_id: MESSAGE_ID }, () => true);
  const error = await withFakeServer(handle, (origin) =>
    withClient(origin, { retries: 3 }, (client) => t.throwsAsync(client.sendMessage({ to: 'X26OT001', workflowId: 'WF', body: Buffer.from('result') }))),
  );
  t.is(error?.message, 'the server answered HTTP 202, but the connection closed before the whole answer arrived');
  t.deepEqual(sendsAndQuestions(requests), { sends: 1, others: ['GET /_ping'] }, 'sending it again would deliver it twice');
});

test('meshbox send whose answer is cut off before the message id says the message was taken, not to send it again, and how to find it', async (t) => {
  const cwd = await mkdtemp(join(work, 'send-'));
  await writeFile(join(cwd, 'result.hl7'), 'MSH|');
  const { requests, handle } = jsonCutOff({ message_id: MESSAGE_ID }, () => true);
  // The local id's lookups (before the send, and after it) know no message carrying it.
  const sendCutOff: FakeHandler = (request, body, response) =>
    request.url?.includes('/outbox/tracking/') ? response.writeHead(404, { 'content-type': 'application/json' }).end('{}') : handle(request, body, response);
  const result = await withFakeServer(sendCutOff, (origin) => cli(origin, ['send', 'result.hl7', '--to', 'X26OT001', '--workflow', 'WF', '--local-id', 'lab 8'], cwd));
  t.is(result.code, 1);
  t.is(
    result.stderr,
    "meshbox: the server answered HTTP 202, but the connection closed before the whole answer arrived\n" +
      "the server took the message (only its id lost): do not send it again; tracking knows no message with local id 'lab 8' yet, " +
      "but the server may still record it (up to 16 minutes after the send): to find it, check then with\n  meshbox track --local-id 'lab 8'\n",
  );
  t.deepEqual(sendsAndQuestions(requests), { sends: 1, others: ['GET /_ping'] });
});

/**
 * The sends among the requests, and what else was asked (each once): a send whose answer is
 * lost is followed only by the question whether the server holds sends to their token (its
 * _ping, itself asked again when its own answer is cut off).
 */
function sendsAndQuestions(requests: readonly string[]): { sends: number; others: string[] } {
  return { sends: requests.filter((line) => line === 'POST /outbox').length, others: [...new Set(requests.filter((line) => line !== 'POST /outbox'))] };
}

test('an answer that is whole but not JSON, or larger than its bound, is not asked again: the network did not fail', async (t) => {
  const requests: string[] = [];
  const [notJson, tooLarge] = await withFakeServer(
    (request, _body, response) => {
      requests.push(`${request.method} ${request.url}`);
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"count":');
    },
    async (origin) => {
      const transport = new HttpsTransport({ origin, certPem: mailbox.mailbox.certPem, keyPem: mailbox.mailbox.keyPem, caPem: server.caPem, attemptHeaders: () => ({}), retries: 3, retryDelayMs: 10 });
      try {
        return [
          await withClient(origin, { retries: 3 }, (client) => t.throwsAsync(client.count())),
          await t.throwsAsync(transport.sendForText({ method: 'GET', path: '/count', retry: 'idempotent' }, 4)),
        ];
      } finally {
        transport.close();
      }
    },
  );
  t.regex(notJson?.message ?? '', /^the server answered HTTP 200 with a body that is not JSON/);
  t.is(tooLarge?.message, 'response body larger than 4 bytes');
  t.is(requests.length, 2, 'one request each');
});

test('an answer cut off after a stop is not asked again', async (t) => {
  const stop = new AbortController();
  // The client has had the headers and half the body for a while when the user stops it (a while
  // that covers a loaded machine: the answer stalls, so nothing else happens meanwhile).
  const { requests, handle } = jsonCutOff({ messages: [MESSAGE_ID] }, () => true, { stall: true, onCut: () => setTimeout(() => stop.abort(), 3_000) });
  const error = await withFakeServer(handle, (origin) =>
    withClient(origin, { retries: 3, retryDelayMs: 600_000, signal: stop.signal }, (client) => t.throwsAsync(client.listInbox())),
  );
  // The stop's cut-off as it is, not the AbortError of a retry wait begun after it.
  t.is(error?.message, 'the server answered HTTP 200, but the connection closed before the whole answer arrived');
  t.deepEqual(requests, ['GET /inbox']);
});
