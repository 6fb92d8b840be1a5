import { createHash, randomBytes } from 'node:crypto';
import { truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { appendFile, mkdtemp, readdir, readFile, rename, rm, statfs, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import test, { type ExecutionContext } from 'ava';
import { startTestServer, type TestServer } from '../../test/support/harness.ts';
import { overriding } from '../../test/support/overriding.ts';
import { MeshErrorCodes } from '../../shared/src/protocol/index.ts';
import { MeshClientError, MeshConnectionError, UnexpectedAnswerError } from '../src/client/errors.ts';
import { MeshClient, type TrackingInfo } from '../src/client/mesh-client.ts';
import { noProgress } from '../src/transfer/progress.ts';
import { chunkSizeWord } from '../src/transfer/chunking.ts';
import { typedWithChunkSize } from '../src/commands/send.ts';
import { ChunkUploadError, ContentEncodingMismatchError, FileChangedError, resumeFile, type ResumeOptions, sendFile } from '../src/transfer/upload.ts';
import type { ProgressFactory } from '../src/transfer/progress.ts';
import { type CliResult, type MailboxFiles, runInProcess, savedIn, writeMailboxFiles } from './support/cli-fixture.ts';
import { type ProxyAction, startStallProxy, type StallProxy } from './support/stall-proxy.ts';

const WORKFLOW = 'PATH_TEST_RESULTS';
const MESSAGE_ID = /^\d{20}_[0-9A-F]{6}$/;
const CHUNK = 64 * 1024;
/** Small, so a chunk size over it is quick to try. */
const MAX_CHUNK_BYTES = 100 * 1024;
/** Above every other message sent here. */
const MAX_MESSAGE_BYTES = 1024 * 1024;
const MAX_CHUNKS = 40;

let server: TestServer;
let work: string;
let lab: MailboxFiles;
let gp: MailboxFiles;

test.before(async () => {
  server = await startTestServer({ limits: { maxChunkBytes: MAX_CHUNK_BYTES, maxMessageBytes: MAX_MESSAGE_BYTES, maxChunks: MAX_CHUNKS } });
  work = await mkdtemp(join(tmpdir(), 'meshbox-chunked-test-'));
  lab = await writeMailboxFiles(server, await server.createMailbox({ name: 'Pathology lab' }), join(work, 'profiles'));
  gp = await writeMailboxFiles(server, await server.createMailbox({ name: 'GP practice' }), join(work, 'profiles'));
});

test.after.always(async () => {
  await server?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

/** A fresh folder holding `payload.bin`. */
async function folderWith(payload: Buffer): Promise<string> {
  const cwd = await mkdtemp(join(work, 'run-'));
  await writeFile(join(cwd, 'payload.bin'), payload);
  return cwd;
}

function as(files: MailboxFiles, args: readonly string[], cwd: string, tty = false): Promise<CliResult> {
  return runInProcess(['--profile', files.profile, ...args], { cwd, tty });
}

function send(cwd: string, extra: readonly string[], tty = false): Promise<CliResult> {
  return as(lab, ['send', 'payload.bin', '--to', gp.mailbox.id, '--workflow', WORKFLOW, ...extra], cwd, tty);
}

/** `send --resume` of payload.bin in chunks of CHUNK, through the server at `origin`. */
function resumeVia(origin: string, cwd: string, messageId: string, extra: readonly string[], tty = false): Promise<CliResult> {
  return as(lab, ['--url', origin, 'send', 'payload.bin', '--resume', messageId, '--chunk-size', '64KiB', ...extra], cwd, tty);
}

async function withClient<T>(files: MailboxFiles, use: (client: MeshClient) => Promise<T>): Promise<T> {
  const client = new MeshClient(files.settings, { retryDelayMs: 10 });
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

/** Downloads with the CLI into a fresh folder; returns what arrived. */
async function downloaded(messageId: string): Promise<{ result: CliResult; bytes: Buffer; leftovers: string[] }> {
  const cwd = await mkdtemp(join(work, 'get-'));
  const result = await as(gp, ['download', messageId, '-o', 'received.bin'], cwd);
  const bytes = result.code === 0 ? await readFile(join(cwd, 'received.bin')) : Buffer.alloc(0);
  const leftovers = (await readdir(cwd)).filter((name) => name !== 'received.bin');
  return { result, bytes, leftovers };
}

/** The message downloads through the CLI (exit 0), byte-identical to `payload`. */
async function downloadsAs(t: ExecutionContext, messageId: string, payload: Buffer): Promise<void> {
  const { result, bytes } = await downloaded(messageId);
  t.is(result.code, 0, result.stderr);
  t.true(bytes.equals(payload));
}

/** Half random, half repetitive: gzip has something to do, and chunks still differ. */
function compressiblePayload(size: number): Buffer {
  const text = Buffer.from('OBR|1|||FBC^Full blood count|||20260101|\r'.repeat(Math.ceil(size / 80)));
  return Buffer.concat([text.subarray(0, size / 2), randomBytes(size - size / 2)]).subarray(0, size);
}

test('a file over the chunk size goes as 3 chunks and the CLI download is byte-exact', async (t) => {
  const payload = randomBytes(150 * 1024);
  const cwd = await folderWith(payload);
  const sent = await send(cwd, ['--chunk-size', '64KiB', '--json']);
  t.is(sent.code, 0, sent.stderr);
  t.is(sent.stderr, '');
  const lines = sent.stdout.split('\n');
  t.deepEqual(lines.slice(1), [''], '--json prints exactly one line');
  const result = JSON.parse(lines[0] ?? '') as { messageId: string; chunks: number; bytes: number };
  t.regex(result.messageId, MESSAGE_ID);
  t.deepEqual(result, { messageId: result.messageId, chunks: 3, bytes: payload.length });

  const tracking = await withClient(lab, (client) => client.track(result.messageId));
  t.is(tracking.status, 'accepted');
  t.is(tracking.chunk_count, 3);

  const { result: download, bytes, leftovers } = await downloaded(result.messageId);
  t.is(download.code, 0, download.stderr);
  t.is(download.stderr, '');
  t.true(bytes.equals(payload));
  t.deepEqual(leftovers, [], 'no temporary file left behind');
});

test('--gzip sends each chunk gzipped (stored and served so) and the download is byte-exact', async (t) => {
  const payload = compressiblePayload(150 * 1024);
  const cwd = await folderWith(payload);
  const sent = await send(cwd, ['--chunk-size', '64KiB', '--gzip']);
  t.is(sent.code, 0, sent.stderr);
  const messageId = sent.stdout.trim();
  t.regex(messageId, MESSAGE_ID);

  await withClient(gp, async (client) => {
    const second = await client.downloadRawChunk(messageId, 2);
    second.body.resume();
    t.is(second.contentEncoding, 'gzip');
    t.is(second.metadata.totalChunks, 3);
    t.true((second.contentLength ?? CHUNK) < CHUNK, 'the chunk travelled compressed');
  });
  await downloadsAs(t, messageId, payload);
});

test('--checksum sends the sha256, which download verifies', async (t) => {
  const payload = randomBytes(100 * 1024);
  const cwd = await folderWith(payload);
  const sent = await send(cwd, ['--chunk-size', '40000', '--checksum', '--json']);
  t.is(sent.code, 0, sent.stderr);
  const { messageId } = JSON.parse(sent.stdout) as { messageId: string };
  const sha256 = `sha256:${createHash('sha256').update(payload).digest('hex')}`;
  t.is((await withClient(lab, (client) => client.track(messageId))).checksum, sha256);

  const got = await as(gp, ['download', messageId, '--json'], await mkdtemp(join(work, 'get-')));
  t.is(got.code, 0, got.stderr);
  t.like(JSON.parse(got.stdout), { messageId, chunks: 3, bytes: payload.length, verifiedChecksum: sha256 });
});

test('a download whose content does not match the message checksum exits 1 and leaves no file', async (t) => {
  const payload = randomBytes(5000);
  const md5 = createHash('md5').update('something else').digest('hex');
  const messageId = await withClient(lab, (client) =>
    client.sendMessage({ to: gp.mailbox.id, workflowId: WORKFLOW, body: payload, checksum: `md5:${md5}` }),
  );
  const { result, leftovers } = await downloaded(messageId);
  t.is(result.code, 1);
  t.is(result.stdout, '');
  t.regex(result.stderr, new RegExp(`^meshbox: checksum mismatch: the message says md5:${md5}, the data received is md5:[0-9a-f]{32}; nothing was saved\\n$`));
  t.deepEqual(leftovers, []);
});

test('an interrupted upload is finished by send --resume, which uploads only the missing chunks', async (t) => {
  const payload = randomBytes(3 * CHUNK + 1000);
  const cwd = await folderWith(payload);
  // The crash: chunks 1 and 2 of 4 made it.
  const messageId = await withClient(lab, async (client) => {
    const id = await client.sendMessage({
      to: gp.mailbox.id,
      workflowId: WORKFLOW,
      body: payload.subarray(0, CHUNK),
      totalChunks: 4,
      fileName: 'payload.bin',
    });
    await client.uploadChunk(id, 2, 4, payload.subarray(CHUNK, 2 * CHUNK));
    return id;
  });
  t.deepEqual((await withClient(lab, (client) => client.track(messageId))).stored_chunks, [1, 2]);
  // Not 'Transferred to recipient mailbox': how far the upload got, and how to go on.
  const tracked = await as(lab, ['track', messageId], cwd);
  t.regex(tracked.stdout, new RegExp(`^status\\s+uploading, 2 of 4 chunks stored \\(meshbox send --resume ${messageId} <file> --chunk-size 65536 sends the rest\\)$`, 'm'));
  t.regex(tracked.stdout, /^file\s+payload\.bin, 4 chunks$/m, 'no size until it is complete');

  const wrongSize = await as(lab, ['send', '--resume', messageId, 'payload.bin', '--chunk-size', '32KiB'], cwd);
  t.is(wrongSize.code, 1);
  t.regex(wrongSize.stderr, /has 4 chunks, but .*payload\.bin \(197608 bytes\) in chunks of 32768 bytes makes 7: resume with the same file and --chunk-size/);
  // Another size that happens to give the same count would garble the message: the stored sizes say so.
  const sameCountOtherSize = await as(lab, ['send', '--resume', messageId, 'payload.bin', '--chunk-size', '60000'], cwd);
  t.is(sameCountOtherSize.code, 1);
  t.regex(sameCountOtherSize.stderr, /chunk 1 of message \S+ has 65536 bytes on the server, but .*payload\.bin in chunks of 60000 bytes gives 60000: resume with the same file, --chunk-size and --gzip as the first run/);
  const wrongRecipient = await as(lab, ['send', '--resume', messageId, 'payload.bin', '--chunk-size', '64KiB', '--to', lab.mailbox.id], cwd);
  t.is(wrongRecipient.code, 1);
  t.regex(wrongRecipient.stderr, /was sent with --to '.+', not '.+': is it the right message\?/);

  const wrongName = await as(lab, ['send', '--resume', messageId, 'payload.bin', '--chunk-size', '64KiB', '--file-name', 'other.bin'], cwd);
  t.is(wrongName.code, 1);
  t.regex(wrongName.stderr, /was sent with --file-name 'payload\.bin', not 'other\.bin'/);
  // Another file of as many chunks (resume commands mixed up): its own name is not the message's.
  await writeFile(join(cwd, 'other.bin'), randomBytes(payload.length));
  const wrongFile = await as(lab, ['send', '--resume', messageId, 'other.bin', '--chunk-size', '64KiB'], cwd);
  t.is(wrongFile.code, 1);
  t.regex(wrongFile.stderr, /was sent with --file-name 'payload\.bin', not 'other\.bin'/);

  // The original command line again, plus --resume: --to, --workflow and --file-name match, so are fine.
  const resumed = await send(cwd, ['--resume', messageId, '--chunk-size', '64KiB', '--file-name', 'payload.bin', '--json']);
  t.is(resumed.code, 0, resumed.stderr);
  // The message carries no checksum: the chunk sizes check the split, nothing the file's content.
  t.regex(resumed.stderr, /^meshbox: warning: message \S+ carries no checksum: the sizes of the chunks the server holds check --chunk-size, but nothing checks that .*payload\.bin is the first run's/);
  t.deepEqual(JSON.parse(resumed.stdout), { messageId, chunks: 4, bytes: payload.length, uploadedChunks: 2, status: 'accepted', storedChunksKnown: true });
  t.is((await withClient(lab, (client) => client.track(messageId))).status, 'accepted');

  await downloadsAs(t, messageId, payload);

  // Once more: nothing left to do, and it says so.
  const again = await as(lab, ['send', '--resume', messageId, 'payload.bin', '--chunk-size', '64KiB'], cwd);
  t.is(again.code, 0, again.stderr);
  t.is(again.stdout, `${messageId}\n`);
  t.is(again.stderr, `message ${messageId} is already accepted: nothing to upload\n`);
});

/** The client, its tracking's status in MESH's v1 spelling (`Uploading`, `Accepted`), as a server may give it. */
function titleCaseStatus(client: MeshClient): MeshClient {
  return overriding(client, {
    track: async (messageId) => {
      const tracking = await client.track(messageId);
      return { ...tracking, status: tracking.status.charAt(0).toUpperCase() + tracking.status.slice(1) };
    },
  });
}

test('a resume reads the status whatever its letter case: `Uploading` is finished, `Accepted` left alone', async (t) => {
  const payload = randomBytes(CHUNK + 1000);
  const cwd = await folderWith(payload);
  const resume = (client: MeshClient, messageId: string) =>
    resumeFile(titleCaseStatus(client), {
      path: join(cwd, 'payload.bin'),
      chunkSize: CHUNK,
      gzip: false,
      progress: noProgress,
      messageId,
      expected: {},
      requireChecksum: false,
    });
  await withClient(lab, async (client) => {
    const messageId = await client.sendMessage({ to: gp.mailbox.id, workflowId: WORKFLOW, body: payload.subarray(0, CHUNK), totalChunks: 2, fileName: 'payload.bin' });
    t.like(await resume(client, messageId), { uploadedChunks: 1, status: 'Accepted' });
    t.like(await resume(client, messageId), { uploadedChunks: 0, status: 'Accepted' }, 'complete: nothing sent');
    await downloadsAs(t, messageId, payload);
  });
});

/** meshbox's tracking fields for an upload in progress, which MESH's tracking does not have. */
const STORED_CHUNK_FIELDS = ['stored_chunks', 'stored_chunk_bytes', 'content_encoding'];

/**
 * Runs `use` with a proxy before the test server for the lab's requests; with `asMesh`, tracking
 * answers come without meshbox's stored-chunk fields, as MESH gives them, and `status` (when
 * given) says what the first tracking answer reports.
 */
async function throughProxy<T>(
  asMesh: boolean,
  status: string | undefined,
  use: (proxy: StallProxy) => Promise<T>,
  otherwise: (method: string, url: string) => ProxyAction = () => 'pass',
): Promise<T> {
  let tracked = 0;
  const decide = (method: string, url: string): ProxyAction => {
    if (!asMesh || method !== 'GET' || !url.includes('/outbox/tracking?')) return otherwise(method, url);
    tracked += 1;
    const first = tracked === 1;
    return {
      rewrite: (body) => {
        const tracking = JSON.parse(body.toString()) as Record<string, unknown>;
        for (const field of STORED_CHUNK_FIELDS) delete tracking[field];
        if (first && status !== undefined) tracking.status = status;
        return Buffer.from(JSON.stringify(tracking));
      },
    };
  };
  const proxy = await startStallProxy(server.ca, server.origin, { certPem: lab.mailbox.certPem, keyPem: lab.mailbox.keyPem, caPem: server.caPem }, decide);
  try {
    return await use(proxy);
  } finally {
    await proxy.close();
  }
}

/** The chunk numbers the proxy saw uploaded to a message (by the chunk endpoint: not chunk 1's send). */
const chunksUploaded = (proxy: StallProxy, messageId: string): number[] =>
  proxy.events.flatMap(({ method, url }) => {
    const found = new RegExp(`/outbox/${messageId}/(\\d+)$`).exec(url);
    return method === 'POST' && found ? [Number(found[1])] : [];
  });

/** The client, but its v2 tracking is MESH's: no chunk_count, nor meshbox's stored-chunk fields (v1 tracking, asked then, is meshbox's). */
function trackedAsMesh(client: MeshClient): MeshClient {
  return overriding(client, {
    track: async (id) => {
      const { chunk_count: _count, ...tracking } = await client.track(id);
      return Object.fromEntries(Object.entries(tracking).filter(([field]) => !STORED_CHUNK_FIELDS.includes(field))) as TrackingInfo;
    },
  });
}

/** A first run of 4 chunks of CHUNK that stopped after chunk 2, that chunk stored as `second`: the message's id. */
async function stoppedAfterTwo(payload: Buffer, second: Buffer): Promise<string> {
  return withClient(lab, async (client) => {
    const id = await client.sendMessage({ to: gp.mailbox.id, workflowId: WORKFLOW, body: payload.subarray(0, CHUNK), totalChunks: 4, fileName: 'payload.bin' });
    await client.uploadChunk(id, 2, 4, second);
    return id;
  });
}

for (const asMesh of [true, false]) {
  const title = asMesh
    ? 'against a server whose tracking does not say which chunks it holds (as MESH), send --resume sends every chunk after the first again, saying so, and the message downloads byte-exact'
    : 'against meshbox, whose tracking says which chunks it holds, send --resume sends only the missing ones';
  test(title, async (t) => {
    const payload = randomBytes(3 * CHUNK + 1000);
    const cwd = await folderWith(payload);
    // As MESH, an earlier copy of chunk 2 (here not the file's: an upload's stored copy, say, of
    // another try) is replaced by the one sent again.
    const messageId = await stoppedAfterTwo(payload, asMesh ? Buffer.alloc(CHUNK) : payload.subarray(CHUNK, 2 * CHUNK));
    await throughProxy(asMesh, undefined, async (proxy) => {
      const resumed = await resumeVia(proxy.origin, cwd, messageId, ['--json']);
      t.is(resumed.code, 0, resumed.stderr);
      // Without stored sizes or a checksum, only the chunk count checks the file and the split: said whatever the flags.
      // With sizes, they check the split, and nothing the file: said too.
      t.is(
        resumed.stderr,
        asMesh
          ? `meshbox: warning: message ${messageId} carries no checksum and the server's tracking no sizes of the chunks it holds: nothing but the chunk count ` +
              `checks that ${join(cwd, 'payload.bin')} and --chunk-size 64KiB and --gzip are the first run's (a file rewritten at the same size ` +
              'would complete the message garbled; only a checksum, sent with --checksum, lets a resume check the file)\n'
          : `meshbox: warning: message ${messageId} carries no checksum: the sizes of the chunks the server holds check --chunk-size, but nothing checks that ${join(cwd, 'payload.bin')} is the first run's ` +
              '(a file rewritten at the same size would complete the message garbled; only a checksum, sent with --checksum, lets a resume check the file)\n',
      );
      t.deepEqual(JSON.parse(resumed.stdout), {
        messageId,
        chunks: 4,
        bytes: payload.length,
        uploadedChunks: asMesh ? 3 : 2,
        status: 'accepted',
        storedChunksKnown: !asMesh,
      });
      t.deepEqual(chunksUploaded(proxy, messageId), asMesh ? [2, 3, 4] : [3, 4]);
    });
    await downloadsAs(t, messageId, payload);
  });
}

test('on a terminal, a resume against a server whose tracking does not say which chunks it holds says it sends them all again, and what it did', async (t) => {
  const payload = randomBytes(3 * CHUNK + 1000);
  const cwd = await folderWith(payload);
  const messageId = await stoppedAfterTwo(payload, payload.subarray(CHUNK, 2 * CHUNK));
  await throughProxy(true, undefined, async (proxy) => {
    const resumed = await resumeVia(proxy.origin, cwd, messageId, [], true);
    t.is(resumed.code, 0, resumed.stderr);
    t.is(resumed.stdout, `${messageId}\n`);
    t.true(
      resumed.stderr.includes(
        `the server does not say which chunks of message ${messageId} it holds (its tracking has no stored_chunks): ` +
          "sending chunks 2 to 4 again, in order (MESH's sandbox, as meshbox, stores a chunk sent again in place of its copy)\n",
      ),
      resumed.stderr,
    );
    t.true(
      resumed.stderr.endsWith(`the server does not say which chunks it holds, so those after the first went again: sent 3 of 4 chunks: message ${messageId} is accepted\n`),
      resumed.stderr,
    );
  });
});

test('a message whose tracking said uploading, but which an earlier run completed meanwhile, is done: the chunk sent again is refused as locked, and no other goes', async (t) => {
  const payload = randomBytes(3 * CHUNK + 1000);
  const cwd = await folderWith(payload);
  // The earlier run's last chunk landed after the resume asked tracking (which still said uploading).
  const messageId = await stoppedAfterTwo(payload, payload.subarray(CHUNK, 2 * CHUNK));
  await withClient(lab, async (client) => {
    await client.uploadChunk(messageId, 3, 4, payload.subarray(2 * CHUNK, 3 * CHUNK));
    await client.uploadChunk(messageId, 4, 4, payload.subarray(3 * CHUNK));
  });
  await throughProxy(true, 'uploading', async (proxy) => {
    const resumed = await resumeVia(proxy.origin, cwd, messageId, ['--json']);
    t.is(resumed.code, 0, resumed.stderr);
    t.deepEqual(JSON.parse(resumed.stdout), { messageId, chunks: 4, bytes: payload.length, uploadedChunks: 0, status: 'accepted', storedChunksKnown: false });
    t.deepEqual(chunksUploaded(proxy, messageId), [2], 'refused as locked: the message is complete');
    t.deepEqual(
      proxy.events.filter(({ url }) => url.includes(`/outbox/${messageId}/`)).map(({ status }) => status),
      [423],
    );
  });
  await downloadsAs(t, messageId, payload);
});

test('against a server whose v2 tracking has no chunk_count (as MESH), a resume checks v1 tracking\'s chunkCount; with none there either, send --resume refuses, naming a v1 refusal; any other v1 failure is thrown', async (t) => {
  const payload = randomBytes(3 * CHUNK + 1000);
  const cwd = await folderWith(payload);
  const messageId = await stoppedAfterTwo(payload, payload.subarray(CHUNK, 2 * CHUNK));
  const resume = (client: MeshClient, chunkSize: number) =>
    resumeFile(client, { path: join(cwd, 'payload.bin'), chunkSize, chunkSizeGiven: true, gzip: false, progress: noProgress, messageId, expected: {}, requireChecksum: false });
  await withClient(lab, async (client) => {
    const asMesh = trackedAsMesh(client);
    await t.throwsAsync(resume(asMesh, 32 * 1024), { message: /has 4 chunks, but .*payload\.bin \(197608 bytes\) in chunks of 32768 bytes makes 7/ });
    const v1Failing = (error: Error) => overriding(asMesh, { trackV1: () => Promise.reject(error) });
    // v1 refused, or answered with something else: the resume names the v1 failure.
    const refused = new MeshClientError({ status: 406, code: undefined, event: undefined, description: 'Not Acceptable', messageId: undefined, internalId: undefined });
    await t.throwsAsync(resume(v1Failing(refused), CHUNK), {
      message: /^the server's tracking does not give the chunk count of message \S+ \(and its v1 tracking failed: Not Acceptable \(HTTP 406\)\): /,
    });
    // MESH's v2 tracking has no subject: with v1 failing too, a --subject given is not said to differ from one not known.
    const noSubject = overriding(v1Failing(refused), {
      track: async (id: string) => {
        const { subject: _subject, ...tracked } = await asMesh.track(id);
        return tracked;
      },
    });
    const withSubject = resumeFile(noSubject, { path: join(cwd, 'payload.bin'), chunkSize: CHUNK, chunkSizeGiven: true, gzip: false, progress: noProgress, messageId, expected: { subject: 'results' }, requireChecksum: false });
    await t.throwsAsync(withSubject, { message: /^the server's tracking does not give the chunk count of message / });
    // A field that differs is checked after the chunk count, which it would otherwise hide.
    const wrongRecipient = resumeFile(v1Failing(refused), { path: join(cwd, 'payload.bin'), chunkSize: CHUNK, chunkSizeGiven: true, gzip: false, progress: noProgress, messageId, expected: { to: 'OTHER001' }, requireChecksum: false });
    await t.throwsAsync(wrongRecipient, { message: /^the server's tracking does not give the chunk count of message / });
    const notImplemented = new MeshClientError({ status: 501, code: undefined, event: undefined, description: 'Not Implemented', messageId: undefined, internalId: undefined });
    await t.throwsAsync(resume(v1Failing(notImplemented), CHUNK), { message: /\(and its v1 tracking failed: Not Implemented \(HTTP 501\)\): / });
    await t.throwsAsync(resume(v1Failing(new UnexpectedAnswerError('asked to track message A (v1), the server answered about "B"')), CHUNK), {
      message: /\(and its v1 tracking failed: asked to track message A \(v1\), the server answered about "B"\)/,
    });
    const v1WithoutCount = overriding(asMesh, { trackV1: async (id) => ({ ...(await client.trackV1(id)), chunkCount: undefined }) });
    await t.throwsAsync(resume(v1WithoutCount, CHUNK), { message: /tracking does not give the chunk count of message \S+ \(nor its v1 tracking chunkCount\)/ });
    // Any other failure is the resume's own, not a server without v1 tracking.
    const failures = [
      new MeshConnectionError(server.origin, Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })),
      new MeshClientError({ status: 401, code: undefined, event: undefined, description: 'Unauthorized', messageId: undefined, internalId: undefined }),
      new MeshClientError({ status: 503, code: undefined, event: undefined, description: 'Service Unavailable', messageId: undefined, internalId: undefined }),
      Object.assign(new Error('This operation was aborted'), { name: 'AbortError' }),
    ];
    for (const failure of failures) await t.throwsAsync(resume(v1Failing(failure), CHUNK), { is: failure }, failure.message);
    t.deepEqual((await client.track(messageId)).stored_chunks, [1, 2], 'nothing sent');
    t.like(await resume(asMesh, CHUNK), { uploadedChunks: 3, status: 'accepted', storedChunksKnown: false });
  });
  await downloadsAs(t, messageId, payload);
});

test('against a server whose tracking gives no sizes of the chunks it holds (as MESH), a resume needs the chunk size given: another size making as many chunks would garble the message; without a checksum it warns', async (t) => {
  const payload = randomBytes(3 * CHUNK + 1000);
  const cwd = await folderWith(payload);
  const messageId = await stoppedAfterTwo(payload, payload.subarray(CHUNK, 2 * CHUNK));
  const warnings: string[] = [];
  const resume = (client: MeshClient, chunkSize: number, chunkSizeGiven: boolean) =>
    resumeFile(client, { path: join(cwd, 'payload.bin'), chunkSize, chunkSizeGiven, gzip: false, progress: noProgress, messageId, expected: {}, requireChecksum: false, warn: (text) => warnings.push(text) });
  await withClient(lab, async (client) => {
    const asMesh = trackedAsMesh(client);
    // 60000 bytes a chunk makes 4 chunks of this file too, cut elsewhere: the default assumed, it would have gone.
    await t.throwsAsync(resume(asMesh, 60_000, false), {
      message: new RegExp(
        `^the server's tracking of message ${messageId} gives no sizes of the chunks it holds \\(MESH's has none\\), so only the chunk count \\(4\\) would check the chunk size, ` +
          "and another size making as many chunks would complete the message garbled: give the first run's --chunk-size to resume it \\(--chunk-size 75MiB if it gave none\\)$",
      ),
    });
    t.deepEqual((await client.track(messageId)).stored_chunks, [1, 2], 'nothing sent');
    t.deepEqual(warnings, []);
    t.like(await resume(asMesh, CHUNK, true), { uploadedChunks: 3, status: 'accepted', storedChunksKnown: false });
  });
  // v1 tracking gives the content encoding ('' here): --gzip is checked, so not named.
  t.deepEqual(warnings, [
    `message ${messageId} carries no checksum and the server's tracking no sizes of the chunks it holds: nothing but the chunk count ` +
      `checks that ${join(cwd, 'payload.bin')} and --chunk-size 64KiB are the first run's (a file rewritten at the same size ` +
      'would complete the message garbled; only a checksum, sent with --checksum, lets a resume check the file)',
  ]);
  await downloadsAs(t, messageId, payload);

  // A message carrying a checksum has its file checked: no warning.
  const checksum = `sha256:${createHash('sha256').update(payload).digest('hex')}`;
  const withChecksum = await withClient(lab, (client) =>
    client.sendMessage({ to: gp.mailbox.id, workflowId: WORKFLOW, body: payload.subarray(0, CHUNK), totalChunks: 4, fileName: 'payload.bin', checksum }),
  );
  warnings.length = 0;
  await withClient(lab, (client) =>
    resumeFile(trackedAsMesh(client), { path: join(cwd, 'payload.bin'), chunkSize: CHUNK, chunkSizeGiven: true, gzip: false, progress: noProgress, messageId: withChecksum, expected: {}, requireChecksum: false, warn: (text) => warnings.push(text) }),
  );
  t.deepEqual(warnings, []);
});

test('against a server whose v2 tracking says nothing of the content encoding (as MESH), a --gzip that is not the first run\'s is refused by v1 tracking\'s contentEncoding before any chunk goes', async (t) => {
  const payload = randomBytes(3 * CHUNK + 1000);
  const cwd = await folderWith(payload);
  const gzipped = await gzipRunStopped(payload, 4, 2);
  const plain = await stoppedAfterTwo(payload, payload.subarray(CHUNK, 2 * CHUNK));
  const uploaded: number[] = [];
  const options = (messageId: string, gzip: boolean): ResumeOptions => ({
    path: join(cwd, 'payload.bin'),
    chunkSize: CHUNK,
    chunkSizeGiven: true,
    gzip,
    progress: noProgress,
    messageId,
    expected: {},
    requireChecksum: false,
  });
  await withClient(lab, async (client) => {
    // A server need not refuse a chunk of another encoding (meshbox does): the resume refuses first.
    const asMesh = overriding(trackedAsMesh(client), {
      uploadChunk: async (messageId, chunkNumber, totalChunks, body, chunkOptions) => {
        uploaded.push(chunkNumber);
        await client.uploadChunk(messageId, chunkNumber, totalChunks, body, chunkOptions);
      },
    });
    const refused = await t.throwsAsync(resumeFile(asMesh, options(gzipped, false)), { instanceOf: ContentEncodingMismatchError });
    t.like(refused, { messageId: gzipped, firstRunGzip: true });
    t.like(await t.throwsAsync(resumeFile(asMesh, options(plain, true)), { instanceOf: ContentEncodingMismatchError }), { messageId: plain, firstRunGzip: false });
    t.deepEqual(uploaded, [], 'nothing sent');
    t.like(await resumeFile(asMesh, options(gzipped, true)), { uploadedChunks: 3, status: 'accepted' });
  });
  await downloadsAs(t, gzipped, payload);
});

test('chunkSizeWord gives a chunk size as --chunk-size takes it back exactly', (t) => {
  t.deepEqual([65_536, 75 * 1024 * 1024, 60_000, 512, 1_610_612_736].map(chunkSizeWord), ['64KiB', '75MiB', '60000', '512', '1610612736']);
});

test('a printed resume command carries --chunk-size, the default added when a send typed none (before a `--`), as a resume against MESH needs it given; a resume\'s is left as typed', (t) => {
  const typed = ['--profile', 'lab', 'send', 'a.bin', '--to', 'X26OT001'];
  t.deepEqual(typedWithChunkSize(typed, {}), [...typed, '--chunk-size', '75MiB']);
  t.deepEqual(typedWithChunkSize([...typed, '--', '-a.bin'], {}), [...typed, '--chunk-size', '75MiB', '--', '-a.bin']);
  t.is(typedWithChunkSize(typed, { chunkSize: 65_536 }), typed, 'typed: kept as typed');
  // A resume (its command printed again after a refusal) is not given a size nobody typed: run, it would pass the check that asks for the first run's.
  const resuming = [...typed, '--resume', 'X'];
  t.is(typedWithChunkSize(resuming, { resume: 'X' }), resuming);
});

test('send --resume into another file of the same size is refused by the checksum the message carries, --checksum given or not: nothing more is uploaded', async (t) => {
  const payload = randomBytes(3 * CHUNK + 1000);
  const checksum = `sha256:${createHash('sha256').update(payload).digest('hex')}`;
  const messageId = await withClient(lab, (client) =>
    client.sendMessage({ to: gp.mailbox.id, workflowId: WORKFLOW, body: payload.subarray(0, CHUNK), totalChunks: 4, fileName: 'payload.bin', checksum }),
  );
  const sameSizeOtherContent = await folderWith(randomBytes(payload.length));
  for (const extra of [[], ['--checksum']]) {
    const result = await as(lab, ['send', '--resume', messageId, 'payload.bin', '--chunk-size', '64KiB', ...extra], sameSizeOtherContent);
    t.is(result.code, 1, extra.join(' '));
    t.regex(result.stderr, /payload\.bin is not the file message \S+ was sent from: its checksum is sha256:/, extra.join(' '));
  }
  t.deepEqual((await withClient(lab, (client) => client.track(messageId))).stored_chunks, [1]);
  // The file itself goes, with or without --checksum.
  const resumed = await send(await folderWith(payload), ['--resume', messageId, '--chunk-size', '64KiB', '--json']);
  t.is(resumed.code, 0, resumed.stderr);
  t.like(JSON.parse(resumed.stdout), { messageId, uploadedChunks: 3, status: 'accepted' });
});

test('send --resume of a message already complete checks it as it would an incomplete one, and reports the message\'s figures', async (t) => {
  const payload = Buffer.from('hello\n');
  const cwd = await folderWith(payload);
  const sent = await send(cwd, ['--local-id', 'lab-6', '--checksum', '--json']);
  t.is(sent.code, 0, sent.stderr);
  const { messageId } = JSON.parse(sent.stdout) as { messageId: string };
  // Another file, as many chunks (one) at this chunk size.
  await writeFile(join(cwd, 'other.bin'), randomBytes(200 * 1024));
  const resume = (file: string, extra: readonly string[]) => as(lab, ['send', file, '--resume', messageId, '--chunk-size', '1MiB', '--json', ...extra], cwd);

  const refusals = {
    '--to': [await resume('payload.bin', ['--to', lab.mailbox.id]), /was sent with --to '.+', not '.+': is it the right message\?/],
    '--workflow': [await resume('payload.bin', ['--workflow', 'OTHER']), /was sent with --workflow 'PATH_TEST_RESULTS', not 'OTHER'/],
    '--local-id': [await resume('payload.bin', ['--local-id', 'zzz']), /was sent with --local-id 'lab-6', not 'zzz'/],
    '--subject': [await resume('payload.bin', ['--subject', 'results']), /was sent without --subject, not 'results': is it the right message\?/],
    'another file': [await resume('other.bin', []), /was sent with --file-name 'payload\.bin', not 'other\.bin': is it the right message\?/],
    'another file, named as the first': [await resume('other.bin', ['--file-name', 'payload.bin']), /message \S+ holds 6 bytes, but .*other\.bin has 204800: is it the file the message was sent from\?/],
    'more chunks': [await resume('other.bin', ['--chunk-size', '64KiB']), /has 1 chunks, but .*other\.bin \(204800 bytes\) in chunks of 65536 bytes makes 4/],
  } as const;
  for (const [what, [result, reason]] of Object.entries(refusals)) {
    t.is(result.code, 1, what);
    t.is(result.stdout, '', what);
    t.regex(result.stderr, reason, what);
  }
  // The message's checksum is checked with --checksum or without: the sizes alone cannot tell.
  const sameSizeOtherContent = await folderWith(Buffer.from('HELLO\n'));
  for (const extra of [['--checksum'], []]) {
    const result = await as(lab, ['send', 'payload.bin', '--resume', messageId, ...extra], sameSizeOtherContent);
    t.is(result.code, 1, extra.join(' '));
    t.regex(result.stderr, /payload\.bin is not the file message \S+ was sent from: its checksum is sha256:/, extra.join(' '));
  }

  const again = await resume('payload.bin', ['--to', gp.mailbox.id, '--workflow', WORKFLOW, '--local-id', 'lab-6']);
  t.is(again.code, 0, again.stderr);
  t.deepEqual(JSON.parse(again.stdout), { messageId, chunks: 1, bytes: payload.length, uploadedChunks: 0, status: 'accepted', storedChunksKnown: true });
});

test('a final chunk whose answer was lost, and whose retry is refused as locked, counts as sent: the message is complete', async (t) => {
  const payload = randomBytes(2 * CHUNK + 10);
  const cwd = await folderWith(payload);
  const refusals: number[] = [];
  const result = await withClient(lab, (client) => {
    // What the transport does after a lost answer: the same chunk again, which the server, having completed the message, refuses.
    const answerLostOnLastChunk = overriding(client, {
      uploadChunk: async (messageId, chunkNumber, totalChunks, body, options) => {
        await client.uploadChunk(messageId, chunkNumber, totalChunks, body, options);
        if (chunkNumber !== totalChunks) return;
        await client.uploadChunk(messageId, chunkNumber, totalChunks, body, options).catch((error: { status?: number }) => {
          refusals.push(error.status ?? 0);
          throw error;
        });
      },
    });
    return sendFile(answerLostOnLastChunk, {
      path: join(cwd, 'payload.bin'),
      chunkSize: CHUNK,
      gzip: false,
      checksum: false,
      message: { to: gp.mailbox.id, workflowId: WORKFLOW, fileName: 'payload.bin' },
      progress: noProgress,
    });
  });
  t.deepEqual(refusals, [423], 'the retry was refused as locked');
  t.like(result, { totalChunks: 3, uploadedChunks: 3, bytes: payload.length });
  await downloadsAs(t, result.messageId, payload);
});

test('a chunk size over the server limit gives its 413 with advice, and exit 1', async (t) => {
  const cwd = await folderWith(randomBytes(150 * 1024));
  const result = await send(cwd, ['--chunk-size', '128KiB']);
  t.is(result.code, 1);
  t.is(result.stdout, '');
  t.regex(result.stderr, /^meshbox: chunk 1 of 2 failed: .*chunk exceeds 102400 bytes.*\(HTTP 413\b.*\); the server refuses chunks this large: use a smaller --chunk-size\n$/);
});

test('a chunk far over the server limit, still being written as the 413 comes, gets the 413 with advice every time, not a broken pipe: the server takes what follows for a while before it closes', async (t) => {
  const cwd = await folderWith(randomBytes(48 * 1024 * 1024));
  for (let attempt = 1; attempt <= 3; attempt++) {
    const result = await send(cwd, ['--chunk-size', '24MiB', '--retries', '0']);
    t.is(result.code, 1);
    t.regex(result.stderr, /\(HTTP 413\b.*\); the server refuses chunks this large: use a smaller --chunk-size\n$/, `attempt ${attempt}`);
  }
});

test('a file that makes more chunks than the server takes is refused at chunk 1, with the way out: a larger --chunk-size', async (t) => {
  const cwd = await folderWith(randomBytes((MAX_CHUNKS + 1) * 1000));
  const result = await send(cwd, ['--chunk-size', '1000']);
  t.is(result.code, 1);
  t.regex(result.stderr, /^meshbox: chunk 1 of 41 failed: .*\(HTTP 417, MESH code InvalidHeaderChunks\); a larger --chunk-size makes fewer chunks\n$/);
});

test('a message over the server size limit is refused at the chunk that passes it, without a --resume that would be refused again', async (t) => {
  const cwd = await folderWith(randomBytes(MAX_MESSAGE_BYTES + 1000));
  const result = await send(cwd, ['--chunk-size', '100KiB']);
  t.is(result.code, 1);
  t.regex(
    result.stderr,
    /^meshbox: chunk 11 of 11 failed: .*message exceeds 1048576 bytes.*\(HTTP 413\b.*\)\nmessage \d{20}_[0-9A-F]{6} cannot be finished \(the server would refuse this chunk again\); it stays incomplete until the server drops it\n$/,
  );
  t.notRegex(result.stderr, /--resume/);
});

/** The refusal of a chunk in another content encoding than chunk 1's, as MESH's sandbox gives it: no code, only its description. */
const MESH_ENCODING_REFUSAL = { detail: [{ event: '', code: '', msg: 'cannot change content encoding' }] };
const ENCODING_REFUSAL_CODE = MeshErrorCodes.contentEncodingChanged.code;

test('a --resume with a --gzip the first run did not use is told to resume without it, and that command finishes the message', async (t) => {
  const payload = randomBytes(2 * CHUNK + 1000);
  const cwd = await folderWith(payload);
  // The first run, without --gzip, stopped after chunk 1 of 3.
  const client = new MeshClient(lab.settings, { retryDelayMs: 10 });
  const messageId = await client.sendMessage({ to: gp.mailbox.id, workflowId: WORKFLOW, body: payload.subarray(0, CHUNK), totalChunks: 3, fileName: 'payload.bin' });
  client.close();

  // The file after `--`, as a name beginning with a dash would need: options must go before it.
  const gzipped = await as(lab, ['send', '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--chunk-size', '64KiB', '--gzip', '--resume', messageId, '--', 'payload.bin'], cwd);
  t.is(gzipped.code, 1);
  // Refused before any chunk went: meshbox's tracking gives the content encoding of an upload in progress.
  const suggested = new RegExp(
    `^meshbox: the chunks of message ${messageId} so far went without --gzip \\(the server's tracking says so\\): resuming with it would mix encodings in one message: ` +
      'finish it with\\n  meshbox (.*)\\n$',
  ).exec(gzipped.stderr);
  t.truthy(suggested, gzipped.stderr);
  const words = suggested![1]!.split(' ');
  t.false(words.includes('--gzip'));
  t.deepEqual(words.slice(-2), ['--', 'payload.bin'], 'the file stays last, after --');
  t.deepEqual((await withClient(lab, (each) => each.track(messageId))).stored_chunks, [1], 'nothing sent');
  const finished = await runInProcess(words, { cwd });
  t.is(finished.code, 0, finished.stderr);
  await downloadsAs(t, messageId, payload);
});

test("a --resume with a --gzip the first run did not use, against a server that tells no content encoding and refuses the chunk as MESH's sandbox does (no code), is told to resume without it, and that command finishes the message", async (t) => {
  const payload = randomBytes(2 * CHUNK + 1000);
  const cwd = await folderWith(payload);
  // The first run, without --gzip, stopped after chunk 1 of 3.
  const client = new MeshClient(lab.settings, { retryDelayMs: 10 });
  const messageId = await client.sendMessage({ to: gp.mailbox.id, workflowId: WORKFLOW, body: payload.subarray(0, CHUNK), totalChunks: 3, fileName: 'payload.bin' });
  client.close();

  // Tracking (v2 and v1) without what it holds or its content encoding, and the chunk's refusal in the sandbox's words.
  const untold = (body: Buffer): Buffer => {
    const tracking = JSON.parse(body.toString()) as Record<string, unknown>;
    for (const field of [...STORED_CHUNK_FIELDS, 'contentEncoding']) delete tracking[field];
    return Buffer.from(JSON.stringify(tracking));
  };
  const refusedAsMesh = (body: Buffer): Buffer => (body.toString().includes(ENCODING_REFUSAL_CODE) ? Buffer.from(JSON.stringify(MESH_ENCODING_REFUSAL)) : body);
  const gzipped = await throughProxy(
    false,
    undefined,
    (proxy) => as(lab, ['--url', proxy.origin, 'send', '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--chunk-size', '64KiB', '--gzip', '--resume', messageId, '--', 'payload.bin'], cwd),
    (method, url) =>
      method === 'GET' && url.includes('/outbox/tracking?') ? { rewrite: untold } : method === 'POST' && url.includes(`/outbox/${messageId}/`) ? { rewrite: refusedAsMesh } : 'pass',
  );
  t.is(gzipped.code, 1);
  t.notRegex(gzipped.stderr, /cannot be finished/);
  const suggested = new RegExp(`HTTP 417.*\\nthe chunks of message ${messageId} so far went without --gzip: finish it with\\n  meshbox (.*)\\n$`).exec(gzipped.stderr);
  t.truthy(suggested, gzipped.stderr);
  const words = suggested![1]!.split(' ').filter((word, index, all) => !(word.startsWith('--url') || all[index - 1] === '--url'));
  t.false(words.includes('--gzip'));
  const finished = await runInProcess(words, { cwd });
  t.is(finished.code, 0, finished.stderr);
  await downloadsAs(t, messageId, payload);
});

/** `send --resume` as the first run of gzipRunStopped sent: its two missing chunks go, and the message downloads byte-exact. */
async function finishesWithGzipRun(t: ExecutionContext, cwd: string, messageId: string, payload: Buffer): Promise<void> {
  const resumed = await send(cwd, ['--chunk-size', '64KiB', '--gzip', '--resume', messageId, '--json']);
  t.is(resumed.code, 0, resumed.stderr);
  t.like(JSON.parse(resumed.stdout), { messageId, status: 'accepted', uploadedChunks: 2 });
  await downloadsAs(t, messageId, payload);
}

/** A first run of `send --gzip` in chunks of CHUNK that stopped after `sent` of `total` chunks: the message's id. */
async function gzipRunStopped(payload: Buffer, total: number, sent: number): Promise<string> {
  const chunk = (number: number): Buffer => gzipSync(payload.subarray((number - 1) * CHUNK, number * CHUNK));
  const client = new MeshClient(lab.settings, { retryDelayMs: 10 });
  try {
    const messageId = await client.sendMessage({ to: gp.mailbox.id, workflowId: WORKFLOW, body: chunk(1), contentEncoding: 'gzip', totalChunks: total, fileName: 'payload.bin' });
    for (let number = 2; number <= sent; number++) await client.uploadChunk(messageId, number, total, chunk(number), { contentEncoding: 'gzip' });
    return messageId;
  } finally {
    client.close();
  }
}

test('a --resume without the --gzip the first run used is told to give it, and with it finishes the message', async (t) => {
  const payload = randomBytes(2 * CHUNK + 1000);
  const cwd = await folderWith(payload);
  // The first run, with --gzip, stopped after chunk 1 of 3.
  const messageId = await gzipRunStopped(payload, 3, 1);
  // Tracking tells that it went gzipped; its chunk size, compressed, it cannot.
  const tracked = await as(lab, ['track', messageId], cwd);
  t.regex(tracked.stdout, new RegExp(`\\(meshbox send --resume ${messageId} <file> --gzip, with the first run's --chunk-size, sends the rest\\)$`, 'm'));

  const plain = await send(cwd, ['--chunk-size', '64KiB', '--resume', messageId]);
  t.is(plain.code, 1);
  t.regex(plain.stderr, /so far went with --gzip \(the server's tracking says so\): resuming without it would mix encodings in one message: finish it with\n  meshbox .* --resume \S+ --gzip\n$/);
  await finishesWithGzipRun(t, cwd, messageId, payload);
});

test('a --resume with --gzip and another chunk size that makes as many chunks is refused (the sizes the server holds are compressed ones), and the right one finishes the message byte-exact', async (t) => {
  const payload = randomBytes(3 * CHUNK + 1000);
  const cwd = await folderWith(payload);
  // The first run, with --gzip and chunks of 64 KiB, stopped after chunk 2 of 4.
  const messageId = await gzipRunStopped(payload, 4, 2);

  const otherSize = await send(cwd, ['--chunk-size', '60000', '--gzip', '--resume', messageId]);
  t.is(otherSize.code, 1);
  t.regex(otherSize.stderr, /chunk 1 of message \S+ has \d+ bytes on the server, but .*payload\.bin in chunks of 60000 bytes gives \d+ gzipped: resume with the same file, --chunk-size and --gzip as the first run/);
  t.deepEqual((await withClient(lab, (each) => each.track(messageId))).stored_chunks, [1, 2], 'nothing sent');
  await finishesWithGzipRun(t, cwd, messageId, payload);
});

test('dispatch with a chunk size over the server limit keeps the file, with the same advice: the setting is wrong, not the file', async (t) => {
  const outbox = await folderWith(randomBytes(150 * 1024));
  // Settled: written a minute ago, as dispatch takes only files that have stopped changing.
  const aMinuteAgo = new Date(Date.now() - 60_000);
  await utimes(join(outbox, 'payload.bin'), aMinuteAgo, aMinuteAgo);
  const result = await as(lab, ['dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--chunk-size', '128KiB'], work);
  t.is(result.code, 1);
  t.regex(result.stderr, /chunk 1 of 2 failed: .*\(HTTP 413\b.*\); the server refuses chunks this large: use a smaller --chunk-size \(payload\.bin stays in the folder\)\n/);
  t.true((await readdir(outbox)).includes('payload.bin'));
  t.deepEqual(await readdir(join(outbox, 'failed')), []);
});

test('without a terminal nothing but the result line is printed; on one, a progress bar and the id to resume with', async (t) => {
  const payload = randomBytes(150 * 1024);
  const cwd = await folderWith(payload);
  const quiet = await send(cwd, ['--chunk-size', '64KiB']);
  t.is(quiet.code, 0, quiet.stderr);
  t.regex(quiet.stdout, /^\d{20}_[0-9A-F]{6}\n$/);
  t.is(quiet.stderr, '');

  // A password given on the command line is not repeated in a command we print.
  const shown = await send(cwd, ['--chunk-size', '64KiB', '--password', lab.mailbox.password], true);
  t.is(shown.code, 0, shown.stderr);
  const messageId = shown.stdout.trim();
  t.regex(messageId, MESSAGE_ID, 'stdout is the result alone');
  t.true(shown.stderr.includes('sending ['), 'a progress bar was drawn');
  t.true(shown.stderr.includes(`message ${messageId}: 3 chunks of 64 KiB; if interrupted, finish it with\n`));
  // The command line as typed, connection settings and all, plus --resume.
  t.true(
    shown.stderr.includes(`  meshbox --profile ${lab.profile} send payload.bin --to ${gp.mailbox.id} --workflow ${WORKFLOW} --chunk-size 64KiB --resume ${messageId}\n`),
    shown.stderr,
  );
  t.false(shown.stderr.includes(lab.mailbox.password));

  const silenced = await send(cwd, ['--chunk-size', '64KiB', '--quiet'], true);
  t.is(silenced.code, 0, silenced.stderr);
  t.is(silenced.stderr, '');

  const get = await as(gp, ['download', messageId], await mkdtemp(join(work, 'get-')), true);
  t.is(get.code, 0, get.stderr);
  t.true(get.stderr.includes('downloading ['));
  t.regex(get.stdout, /payload\.bin\n$/);
});

test("a gzipped message that would unzip past --min-free of the disk's free space is not saved: download and receive say so, keep nothing, acknowledge nothing; with room it is saved", async (t) => {
  // 20 MiB of zeros travels as ~20 KiB: the size the server holds says nothing of what it unzips to.
  const unzipped = Buffer.alloc(20 * 1024 * 1024);
  const recipient = await writeMailboxFiles(server, await server.createMailbox({ name: 'GP practice receiving a zip bomb' }), join(work, 'profiles'));
  const messageId = await withClient(lab, (client) =>
    client.sendMessage({ to: recipient.mailbox.id, workflowId: WORKFLOW, body: gzipSync(unzipped), contentEncoding: 'gzip', fileName: 'bomb.bin' }),
  );
  const cwd = await mkdtemp(join(work, 'bomb-'));
  const { bavail, bsize } = await statfs(cwd);
  // More than the disk has: the first write would already leave less.
  const beyondTheDisk = String(bavail * bsize + 2 ** 40);

  const download = await as(recipient, ['download', messageId, '-o', 'received.bin', '--min-free', beyondTheDisk], cwd);
  t.is(download.code, 1);
  t.regex(download.stderr, /^meshbox: saving the message would leave less than [\d.]+ [KMGT]iB free on the disk of .+ \([\d.]+ [KMGT]?i?B free\): nothing of it is kept; make room, or lower --min-free\n$/);
  t.deepEqual(await readdir(cwd), [], 'nothing left, not even a partial file');

  const receive = await as(recipient, ['receive', '.', '--min-free', beyondTheDisk], cwd);
  t.is(receive.code, 1);
  t.true(receive.stderr.includes(`lower --min-free (message ${messageId} stays in the inbox)`), receive.stderr);
  t.deepEqual(await savedIn(cwd), []);
  t.true((await withClient(recipient, (client) => client.listInbox())).includes(messageId), 'not acknowledged');

  const saved = await as(recipient, ['receive', '.', '--min-free', '0'], cwd);
  t.is(saved.code, 0, saved.stderr);
  t.true((await readFile(join(cwd, `${messageId}_bomb.bin`))).equals(unzipped));
  t.is((await as(recipient, ['download', messageId, '--min-free', '5XB'], cwd)).code, 2, 'a size it cannot read is a usage error');
});

test("gzip data followed by more after a zero byte (which zlib ignores, and Python's gzip reads as another member) is refused as broken, not saved cut short and acknowledged; zero padding alone is saved", async (t) => {
  const recipient = await writeMailboxFiles(server, await server.createMailbox({ name: 'GP practice receiving padded gzip' }), join(work, 'profiles'));
  const sendGzip = (body: Buffer, fileName: string) =>
    withClient(lab, (client) => client.sendMessage({ to: recipient.mailbox.id, workflowId: WORKFLOW, body, contentEncoding: 'gzip', fileName }));
  const twoMembers = await sendGzip(Buffer.concat([gzipSync('MSH|first'), Buffer.from([0]), gzipSync('|second')]), 'two.hl7');
  const cwd = await mkdtemp(join(work, 'padded-gzip-'));

  const download = await as(recipient, ['download', twoMembers], cwd);
  t.is(download.code, 1);
  t.regex(download.stderr, /chunk 1 does not decompress \(\d+ bytes follow the gzip data after a zero byte, which gunzip would ignore\): the sender's gzip data is broken; nothing was saved/);
  t.deepEqual(await readdir(cwd), []);
  // Padding longer than a read: what follows comes in a later piece, after zlib stopped.
  const longPadding = await sendGzip(Buffer.concat([gzipSync('MSH|first'), Buffer.alloc(90_000), gzipSync('|second')]), 'two.hl7');
  const longPadded = await as(recipient, ['download', longPadding], cwd);
  t.is(longPadded.code, 1, longPadded.stderr);
  t.deepEqual(await readdir(cwd), []);
  await withClient(recipient, (client) => client.acknowledge(longPadding));
  const received = await as(recipient, ['receive', '.'], cwd);
  t.is(received.code, 1);
  t.deepEqual(await savedIn(cwd), []);
  t.deepEqual(await withClient(recipient, (client) => client.listInbox()), [twoMembers], 'not acknowledged');

  const padded = await sendGzip(Buffer.concat([gzipSync('MSH|padded'), Buffer.alloc(512)]), 'padded.hl7');
  const saved = await as(recipient, ['download', padded], cwd);
  t.is(saved.code, 0, saved.stderr);
  t.is(await readFile(join(cwd, 'padded.hl7'), 'utf8'), 'MSH|padded');
});

test('a bad --chunk-size or --retries is a usage error that says what is accepted', async (t) => {
  const cwd = await folderWith(Buffer.from('x'));
  const unit = await send(cwd, ['--chunk-size', '20XB']);
  t.is(unit.code, 2);
  t.true(unit.stderr.includes("option '--chunk-size <size>' argument '20XB' is invalid"), unit.stderr);
  t.true(unit.stderr.includes('e.g. 20MiB'));
  t.is((await send(cwd, ['--chunk-size', '0'])).code, 2);
  t.is((await send(cwd, ['--chunk-size', '0.5'])).code, 2);
  const retries = await send(cwd, ['--retries', 'many']);
  t.is(retries.code, 2);
  t.true(retries.stderr.includes('Give a whole number from 0 to 100.'));
  const missing = await as(lab, ['send', 'payload.bin', '--to', gp.mailbox.id], cwd);
  t.is(missing.code, 2);
  t.true(missing.stderr.includes("required option '--workflow <id>' not specified"));
});

test('a file appended to while its last chunk was read is reported: the message holds it as it was when the send began', async (t) => {
  const payload = randomBytes(CHUNK * 2 + 100);
  const cwd = await folderWith(payload);
  const path = join(cwd, 'payload.bin');
  const result = await withClient(lab, (client) =>
    sendFile(
      // The writer appends once the last chunk has gone.
      overriding(client, {
        uploadChunk: async (messageId, chunkNumber, totalChunks, body, options) => {
          await client.uploadChunk(messageId, chunkNumber, totalChunks, body, options);
          if (chunkNumber === totalChunks) await appendFile(path, 'more');
        },
      }),
      {
        path,
        chunkSize: CHUNK,
        gzip: false,
        progress: noProgress,
        checksum: false,
        message: { to: gp.mailbox.id, workflowId: WORKFLOW },
      },
    ),
  );
  t.true(result.changedAfterSend);
  t.is(result.bytes, payload.length);
  const { bytes } = await downloaded(result.messageId);
  t.true(bytes.equals(payload));
});

/** A progress display that runs `change` once the send has read its first 64 KiB. */
function changingAfterFirstRead(change: () => void): ProgressFactory {
  let changed = false;
  return (spec) => ({
    ...noProgress(spec),
    update: (_value, bytes) => {
      if (changed || spec.label !== 'sending' || bytes < CHUNK) return;
      changed = true;
      change();
    },
  });
}

for (const gzip of [false, true]) {
  for (const [how, change] of [
    // A laboratory system writing a corrected value into the report in place: same size.
    ['rewritten in place', (path: string) => writeFileSync(path, Buffer.alloc(CHUNK + 30_000, 'A'), { flag: 'r+' })],
    ['cut short', (path: string) => truncateSync(path, 1000)],
  ] as const) {
    test(`a one-chunk file ${how} while it is read${gzip ? ' (--gzip)' : ''} is not sent: the request is cut off before its end, nothing is delivered`, async (t) => {
      const payload = randomBytes(CHUNK + 30_000);
      const cwd = await folderWith(payload);
      const path = join(cwd, 'payload.bin');
      const aMinuteAgo = new Date(Date.now() - 60_000);
      await utimes(path, aMinuteAgo, aMinuteAgo);
      const recipient = await writeMailboxFiles(server, await server.createMailbox(), join(work, 'profiles'));
      const failure = await withClient(lab, (client) =>
        sendFile(client, {
          path,
          chunkSize: MAX_CHUNK_BYTES,
          gzip,
          progress: changingAfterFirstRead(() => change(path)),
          checksum: false,
          message: { to: recipient.mailbox.id, workflowId: WORKFLOW },
        }),
      ).then(
        () => undefined,
        (error: unknown) => error,
      );
      t.true(failure instanceof ChunkUploadError, String(failure));
      t.true((failure as ChunkUploadError).cause instanceof FileChangedError, String(failure));
      t.deepEqual(await withClient(recipient, (client) => client.listInbox()), [], 'nothing delivered, garbled or cut');
    });
  }
}

test('a one-chunk file removed while it is read goes whole: the handle opened before reads it to its end, unchanged', async (t) => {
  const payload = randomBytes(CHUNK + 30_000);
  const cwd = await folderWith(payload);
  const path = join(cwd, 'payload.bin');
  const result = await withClient(lab, (client) =>
    sendFile(client, {
      path,
      chunkSize: MAX_CHUNK_BYTES,
      gzip: false,
      progress: changingAfterFirstRead(() => unlinkSync(path)),
      checksum: false,
      message: { to: gp.mailbox.id, workflowId: WORKFLOW },
    }),
  );
  t.false(result.changedAfterSend);
  t.true((await downloaded(result.messageId)).bytes.equals(payload));
});

test('a file whose name no MESH header can carry needs --file-name, and goes with it', async (t) => {
  const cwd = await mkdtemp(join(work, 'run-'));
  await writeFile(join(cwd, '検査結果.csv'), 'Na,140');
  const refused = await as(lab, ['send', '検査結果.csv', '--to', gp.mailbox.id, '--workflow', WORKFLOW], cwd);
  t.is(refused.code, 2);
  t.regex(refused.stderr, /the file's name "検査結果\.csv" cannot go as a MESH header \(Latin-1 only\): give --file-name/);
  const subject = await as(lab, ['send', '検査結果.csv', '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--subject', 'line\nbreak'], cwd);
  t.is(subject.code, 2);
  t.regex(subject.stderr, /--subject <text>.*Latin-1 text without line breaks/s);
  const sent = await as(lab, ['send', '検査結果.csv', '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--file-name', 'results.csv', '--json'], cwd);
  t.is(sent.code, 0, sent.stderr);
  const { messageId } = JSON.parse(sent.stdout) as { messageId: string };
  t.is((await downloaded(messageId)).bytes.toString(), 'Na,140');
});

test('a file renamed into place between chunks, of the same size and modification time (rsync -a, cp -p then mv), is another file: the send stops, not a message of half of each', async (t) => {
  const cwd = await mkdtemp(join(work, 'renamed-'));
  const path = join(cwd, 'report.hl7');
  const first = Buffer.alloc(2 * CHUNK, 'A');
  await writeFile(path, first);
  const when = new Date(Date.now() - 60_000);
  await utimes(path, when, when);
  const sent = await withClient(lab, (client) =>
    sendFile(
      overriding(client, {
        sendMessage: async (options) => {
          const messageId = await client.sendMessage(options);
          // Chunk 1 gone: the lab's system puts the next report in place, as rsync -a would.
          await writeFile(`${path}.tmp`, Buffer.alloc(2 * CHUNK, 'B'));
          await utimes(`${path}.tmp`, when, when);
          await rename(`${path}.tmp`, path);
          return messageId;
        },
      }),
      { path, chunkSize: CHUNK, gzip: false, progress: noProgress, checksum: false, message: { to: gp.mailbox.id, workflowId: WORKFLOW, fileName: 'report.hl7' } },
    ),
  ).then(
    () => 'sent',
    (error: unknown) => String(error),
  );
  t.regex(sent, /report\.hl7 changed while it was being sent \(rewritten\): send it again once it is complete/);
});

test('a file that reports 0 bytes but has content (a /proc file) is refused, --gzip or not: cut by its size, it went as an empty message', async (t) => {
  const content = await readFile('/proc/version');
  t.true(content.length > 0, 'precondition: /proc/version has content');
  const cwd = await mkdtemp(join(work, 'sizeless-'));
  for (const extra of [[], ['--gzip']]) {
    const sent = await as(lab, ['send', '/proc/version', '--to', gp.mailbox.id, '--workflow', WORKFLOW, ...extra], cwd);
    t.is(sent.code, 1, sent.stdout);
    t.is(sent.stderr, 'meshbox: version reports a size of 0 bytes but has content (a pseudo-file, as /proc\'s are): copy it into a regular file, and send that\n');
  }
});
