import { execFile } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import test, { type ExecutionContext } from 'ava';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { ensureLocalServices } from '../../scripts/services/index.ts';
import { freePort, waitFor } from '../../scripts/services/processes.ts';
import { createCertificateAuthority, issueServerCertificate } from '../../shared/src/pki/index.ts';
import { buildAuthorizationHeader } from '../../shared/src/protocol/index.ts';
import { REPO_ROOT } from '../../shared/src/dev-paths.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import { LifecycleSchedule } from '../../server/src/store/lifecycle-schedule.ts';
import type { Services } from '../../server/src/domain/services.ts';
import type { WorkerTiming } from '../../server/src/jobs/lifecycle-worker.ts';
import { startTestServer, TEST_SECRET_KEY, type TestMailbox, type TestServer, type TestServerOptions } from '../support/harness.ts';
import { atStartOnRedis, BackendUnreachableError, createS3Client } from '../../server/src/connections.ts';
import { removeBucket, removeDeploymentState } from '../support/cleanup.ts';
import { startServerProcess } from '../support/server-process.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';
import { mailboxRequest, openMailboxRequest, rawRequest, readText, sendMessage, streamingRequest } from '../support/http.ts';
import { MiB, PayloadGenerator } from '../support/payload.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { type S3ErrorProxy, startS3ErrorProxy } from '../support/s3-error-proxy.ts';
import { DeleteObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { within } from '../../server/src/time-limit.ts';
import { capturedLogger } from '../../server/test/support/captured-log.ts';
import { replicationOffset, startTestRedis } from '../support/redis-server.ts';
import { tokenClaimed } from '../support/token-claims.ts';
import { overriding } from '../support/overriding.ts';

const portOf = (url: string): number => Number(new URL(url).port);

/** Polls every 200 ms until the check holds, for at most `seconds`. */
const eventually = (check: () => Promise<boolean>, seconds = 20): Promise<boolean> => waitFor(check, seconds * 1000, 200);

test('object storage unreachable: sends fail with 503 and a MESH error, nothing changes, and it recovers by itself', async (t) => {
  const local = await ensureLocalServices();
  const proxy = await startTcpProxy(portOf(local.s3.endpoint));
  // Payloads all in object storage (small ones would otherwise stay in Redis and not need it).
  const server = await startTestServer({ s3Endpoint: `http://127.0.0.1:${proxy.port}`, limits: { inlinePayloadBytes: 0 } });
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    const before = await sendMessage(server, lab, gp, 'before the outage');

    await proxy.cut();
    const token = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
    const send = () =>
      mailboxRequest(server, lab, {
        method: 'POST',
        path: `/messageexchange/${lab.id}/outbox`,
        headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'W' },
        body: 'during the outage',
        authorization: token,
      });
    const refused = await send();
    t.is(refused.status, 503);
    t.like(refused.json().detail[0], { code: '503' });
    const inbox = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox` });
    t.deepEqual(inbox.json().messages, [before], 'no partial message appeared');
    const ready = await rawRequest(server, { path: '/readyz', clientCertificate: lab });
    t.is(ready.status, 503);
    t.like(ready.json(), { redis: 'ok', objectStorage: 'unreachable' });

    await proxy.restore();
    t.true(await eventually(async () => (await rawRequest(server, { path: '/readyz', clientCertificate: lab })).status === 200));
    const retried = await send();
    t.is(retried.status, 202, 'the same token works for the retry after a 503');
    const download = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${retried.json().message_id}` });
    t.is(download.body.toString(), 'during the outage');
  } finally {
    await proxy.close();
    await server.close();
  }
});

async function sha256(stream: NodeJS.ReadableStream): Promise<string> {
  const hash = createHash('sha256');
  for await (const part of stream) hash.update(part as Buffer);
  return hash.digest('hex');
}

test('object storage failing part-way through a download cuts the response off (never a short 200 or a hang); the retry gets every byte', async (t) => {
  const local = await ensureLocalServices();
  const proxy = await startTcpProxy(portOf(local.s3.endpoint));
  const server = await startTestServer({ s3Endpoint: `http://127.0.0.1:${proxy.port}`, worker: false });
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    // Far more than the sockets between the object store and the client can hold at once.
    const size = 64 * MiB;
    const payload = new PayloadGenerator();
    const sent = await streamingRequest(server, lab, {
      method: 'POST',
      path: `/messageexchange/${lab.id}/outbox`,
      headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'W', 'content-length': String(size) },
      body: payload.stream(0, size),
    });
    t.is(sent.statusCode, 202);
    const messageId = (JSON.parse(await readText(sent)) as { message_id: string }).message_id;
    const download = (): Promise<IncomingMessage> => streamingRequest(server, gp, { method: 'GET', path: `/messageexchange/${gp.id}/inbox/${messageId}` });

    const interrupted = await download();
    t.is(interrupted.statusCode, 200);
    t.is(interrupted.headers['content-length'], String(size));
    let received = 0;
    const ending = new Promise<{ complete: boolean; error: boolean }>((resolve) => {
      let error = false;
      interrupted.on('error', () => (error = true));
      interrupted.on('close', () => resolve({ complete: interrupted.complete, error }));
    });
    interrupted.once('data', () => {
      // The store goes away while most of the payload is still in it.
      interrupted.pause();
      void proxy.cut().then(() => interrupted.resume());
    });
    interrupted.on('data', (part: Buffer) => (received += part.length));
    const ended = await ending;
    t.false(ended.complete, 'the response is not complete');
    t.true(ended.error, 'the client sees the connection cut, not a normal end');
    t.true(received < size, `${received} of ${size} bytes`);

    await proxy.restore();
    const whole = await download();
    t.is(whole.statusCode, 200);
    t.is(await sha256(whole), await sha256(payload.stream(0, size)), 'the retry gets every byte');
  } finally {
    await proxy.close();
    await server.close();
  }
});

/**
 * A message kept in object storage, whose kept-alive connection the send used (which a download's
 * read takes up again) has then gone dead; `use` runs with the server, the recipient and the id.
 */
async function withStorageConnectionDead(
  options: Pick<TestServerOptions, 's3SilenceMs' | 'limits'>,
  use: (server: TestServer, gp: TestMailbox, messageId: string, proxy: TcpProxy) => Promise<void>,
): Promise<void> {
  const local = await ensureLocalServices();
  const proxy = await startTcpProxy(portOf(local.s3.endpoint));
  const server = await startTestServer({ ...options, s3Endpoint: `http://127.0.0.1:${proxy.port}`, limits: { inlinePayloadBytes: 0, ...options.limits }, worker: false });
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    const messageId = await sendMessage(server, lab, gp, 'kept in object storage');
    proxy.silenceOpenConnections();
    await use(server, gp, messageId, proxy);
  } finally {
    await proxy.close();
    await server.close();
  }
}

/** Sends `payload` (kept in object storage) and downloads it from a server whose services `failing` changes: the download is to be answered 503. */
async function downloadAnswered503(t: ExecutionContext, failing: (services: Services) => Services, payload: Buffer, headers: Record<string, string> = {}): Promise<void> {
  const server = await startTestServer({ worker: false, appServices: failing });
  t.teardown(() => server.close());
  const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
  const messageId = await sendMessage(server, lab, gp, payload, headers);
  const download = await within(mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` }), 20_000);
  t.is(download.status, 503, download.body.toString());
  t.like(download.json().detail[0], { code: '503' });
}

/** Object storage whose chunk streams, as they are opened, go through `change`. */
function changingChunkStreams(services: Services, change: (body: Readable) => Readable): Services['payloads'] {
  return overriding(services.payloads, {
    getChunk: async (chunk, abortSignal) => {
      const stored = await services.payloads.getChunk(chunk, abortSignal);
      return stored && !Buffer.isBuffer(stored.body) ? { ...stored, body: change(stored.body) } : stored;
    },
  });
}

test('object storage failing after a chunk is opened and before its first byte goes (while the download is audited) is answered 503: the response is not left waiting for bytes that never come', async (t) => {
  let opened: Readable | undefined;
  const failing = (services: Services): Services => ({
    ...services,
    payloads: changingChunkStreams(services, (body) => (opened = body)),
    audit: overriding(services.audit, {
      record: async (entry) => {
        opened?.destroy(new Error('read ECONNRESET'));
        return services.audit.record(entry);
      },
    }),
  });
  // Over the inline limit: kept in object storage.
  await downloadAnswered503(t, failing, randomBytes(100_000));
});

test('object storage failing before the first byte of a gzip chunk that is being decompressed for its recipient is answered 503, not said to be corrupt content', async (t) => {
  const failing = (services: Services): Services => ({
    ...services,
    payloads: changingChunkStreams(services, (body) => {
      // Its connection dies before a byte of it has come.
      body.destroy();
      const dying = new PassThrough();
      setTimeout(() => dying.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })), 100);
      return dying;
    }),
  });
  // Asked without Accept-Encoding: gzip, the chunk is decompressed on its way.
  await downloadAnswered503(t, failing, gzipSync(randomBytes(100_000)), { 'content-encoding': 'gzip' });
});

test('an object storage connection gone silent (open, never answering again) is given up after the silence timeout and the read tried on a new one: the download is served, not held for ever', async (t) => {
  // Long enough for a loaded S3 server to answer the retry on the new connection.
  await withStorageConnectionDead({ s3SilenceMs: 3_000 }, async (server, gp, messageId) => {
    const download = await within(mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` }), 20_000);
    t.is(download.status, 200);
    t.is(download.body.toString(), 'kept in object storage');
  });
});

test('a recipient that leaves while its chunk is still being read from object storage frees its transfer slot at once: its next download is served, not told 429', async (t) => {
  // The first download's read would wait out the silence timeout (120 s).
  await withStorageConnectionDead({ limits: { maxTransfersPerMailbox: 1 } }, async (server, gp, messageId, proxy) => {
    const before = proxy.bytesToBackend();
    const first = openMailboxRequest(server, gp, { method: 'GET', path: `/messageexchange/${gp.id}/inbox/${messageId}` });
    first.on('error', () => undefined);
    first.end();
    // Left once its read has gone out on the silent connection (its slot taken): left before, the
    // next download's read would take that connection and wait out the silence timeout.
    t.true(await waitFor(async () => proxy.bytesToBackend() > before, 30_000, 20), 'the first download is reading from object storage');
    first.destroy();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const again = await within(mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` }), 20_000);
    t.is(again.status, 200);
  });
});

/** A test server whose object storage is reached through an S3 error proxy (payloads all in object storage, no worker). */
async function serverBehindS3ErrorProxy(options: TestServerOptions = {}): Promise<{ proxy: S3ErrorProxy; server: TestServer; close: () => Promise<void> }> {
  const proxy = await startS3ErrorProxy(portOf((await ensureLocalServices()).s3.endpoint));
  const server = await startTestServer({ s3Endpoint: `http://127.0.0.1:${proxy.port}`, limits: { inlinePayloadBytes: 0 }, worker: false, ...options }).catch(async (error: unknown) => {
    await proxy.close();
    throw error;
  });
  const close = async (): Promise<void> => {
    await proxy.close();
    await server.close();
  };
  return { proxy, server, close };
}

test('object storage refusing for now (503 SlowDown, 429, 500 InternalError) is answered 503, as storage out of reach is, throttled with Retry-After, and logged once as a backend away: the client retries, and its retry goes', async (t) => {
  const { logger, lines } = capturedLogger();
  const { proxy, server, close } = await serverBehindS3ErrorProxy({ logger });
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    proxy.fail('PUT', /\/messages\//, 503, 'SlowDown', 1);
    const authorization = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
    const send = () =>
      mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox`, headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'W' }, body: 'results', authorization });
    const refused = await send();
    t.is(refused.status, 503);
    t.is(refused.json().detail[0].code, '503');
    t.is(refused.headers['retry-after'], '5', 'throttled: the client is told to back off too');
    const sent = await send();
    t.is(sent.status, 202, 'the retry, with the same token, goes');
    const messageId: string = sent.json().message_id;
    const download = () => mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` });

    proxy.fail('GET', new RegExp(`/messages/${messageId}/`), 500, 'InternalError');
    t.is((await download()).status, 503);
    proxy.clear();
    // Some S3-compatible stores throttle with 429, on every try the SDK makes of a download's GET (an upload streaming from its client it cannot retry).
    proxy.fail('GET', new RegExp(`/messages/${messageId}/`), 429, 'SlowDown');
    const throttled = await download();
    t.is(throttled.status, 503, 'no failure of ours: not 500');
    t.is(throttled.headers['retry-after'], '5');
    t.true(proxy.seen.filter((line) => line.startsWith('GET ') && line.includes(messageId)).length > 4, 'the SDK retried before giving up');
    t.is(lines.filter((line) => line.msg === 'request failed: a backend is unavailable').length, 1, 'logged once, then counted, as a backend away is');
  } finally {
    await close();
  }
});

test('readiness holds while object storage throttles its HeadBucket (503 SlowDown, 429), saying so, and fails when storage answers an error that is no throttling (the bucket gone, access denied)', async (t) => {
  // Moved on a second per probe, past the time a ready answer stands unchecked.
  const clock = { now: Date.now() };
  const { proxy, server, close } = await serverBehindS3ErrorProxy({ appServices: (services) => ({ ...services, now: () => new Date(clock.now) }) });
  try {
    const monitoring = await server.createMailbox();
    const headBucket = /^\/[^/?]+\/?(\?|$)/;
    const headsSeen = () => proxy.seen.filter((line) => line.startsWith('HEAD ')).length;
    const probe = async () => {
      clock.now += 1_000;
      const answer = await rawRequest(server, { path: '/readyz', clientCertificate: monitoring });
      return { status: answer.status, body: answer.json() };
    };
    t.deepEqual(await probe(), { status: 200, body: { status: 'ready', redis: 'ok', objectStorage: 'ok' } });

    // Every try answered so. A HEAD's answer has no body, as S3's has none: only its status tells a throttling.
    // Not ready for a store that cannot serve this deployment: no bucket, credentials refused, a failure of its own (past the SDK's retries).
    const answers = [[503, 'SlowDown', 'throttled'], [429, 'SlowDown', 'throttled'], [404, 'NoSuchBucket', 'error'], [403, 'AccessDenied', 'error'], [500, 'InternalError', 'error']] as const;
    for (const [status, code, objectStorage] of answers) {
      proxy.clear();
      proxy.fail('HEAD', headBucket, status, code);
      const before = headsSeen();
      const ready = objectStorage === 'throttled';
      t.deepEqual(await probe(), { status: ready ? 200 : 503, body: { status: ready ? 'ready' : 'unavailable', redis: 'ok', objectStorage } }, `${status} ${code}`);
      // Decided by the first answer, not by the SDK's retries (a 429's can outlast the check's 2 s), which would only add to the load.
      if (ready) t.is(headsSeen() - before, 1, `${status} ${code}: asked once`);
    }
    proxy.clear();
    t.deepEqual(await probe(), { status: 200, body: { status: 'ready', redis: 'ok', objectStorage: 'ok' } });
  } finally {
    await close();
  }
});

test("a sender whose body stopped arriving until object storage gave up on the upload (S3's 400 RequestTimeout, after ~20 s idle) is answered 408, no fault of the server's and not logged as one", async (t) => {
  const { logger, lines } = capturedLogger();
  const { proxy, server, close } = await serverBehindS3ErrorProxy({ logger });
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    const upload = openMailboxRequest(server, lab, {
      method: 'POST',
      path: `/messageexchange/${lab.id}/outbox`,
      headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'W', 'content-length': '200000' },
    });
    upload.on('error', () => undefined);
    const answered = new Promise<{ status: number; body: string }>((resolve) => upload.on('response', async (response) => resolve({ status: response.statusCode ?? 0, body: await readText(response) })));
    // Half the body, then nothing more: storage gives up on the upload.
    proxy.fail('PUT', /\/messages\//, 400, 'RequestTimeout');
    upload.write(Buffer.alloc(100_000));
    const answer = await answered;
    upload.destroy();
    t.is(answer.status, 408, answer.body);
    t.is(JSON.parse(answer.body).detail[0].code, '408');
    t.deepEqual(lines.filter((line) => (line.level as number) >= 50).map((line) => line.msg), [], 'nothing logged as an error');
  } finally {
    await close();
  }
});

test("a download is held to the chunk's recorded size, not to what object storage says: storage streaming without a length (an S3 gateway answering chunked) is served with the recorded one, and cut off if it brings other than that; a stored object of another size is an error, not a shorter payload passed off as whole", async (t) => {
  const { proxy, server, close } = await serverBehindS3ErrorProxy();
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    const payload = randomBytes(50_000);
    const whole = await sendMessage(server, lab, gp, payload);
    const [first, second] = [payload.subarray(0, 20_000), payload.subarray(20_000)];
    const chunked = await sendMessage(server, lab, gp, first, { 'mex-Chunk-Range': '1:2' });
    const upload = await mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox/${chunked}/2`, headers: { 'mex-Chunk-Range': '2:2' }, body: second });
    t.is(upload.status, 202);
    const download = (path: string) => mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${path}` });
    const objectOf = (messageId: string) => new RegExp(`/messages/${messageId}/`);

    proxy.alter('GET', objectOf(whole), (real) => ({ ...real, chunked: true }), 1);
    const unsaid = await download(whole);
    t.is(unsaid.status, 200);
    t.is(unsaid.headers['content-length'], String(payload.length));
    t.true(unsaid.body.equals(payload), `${unsaid.body.length} bytes of ${payload.length}`);
    proxy.alter('GET', objectOf(chunked), (real) => ({ ...real, chunked: true }), 1);
    const secondUnsaid = await download(`${chunked}/2`);
    t.is(secondUnsaid.headers['content-length'], String(second.length));
    t.true(secondUnsaid.body.equals(second));

    // Cut off, or refused when the fault shows before the answer begins: never a 200 passed off as whole.
    const notWhole = async (path: string): Promise<string> => {
      const answer = await download(path).catch(() => undefined);
      return answer === undefined ? 'cut off' : `${answer.status}`;
    };
    proxy.alter('GET', objectOf(whole), (real) => ({ ...real, body: real.body.subarray(0, 30_000), chunked: true }), 1);
    t.regex(await notWhole(whole), /^(cut off|5\d\d)$/, 'fewer bytes streamed than recorded');
    proxy.alter('GET', objectOf(whole), (real) => ({ ...real, body: Buffer.concat([real.body, Buffer.from('HTTP/1.1 200 OK')]), chunked: true }), 1);
    t.regex(await notWhole(whole), /^(cut off|5\d\d)$/, 'more bytes streamed than recorded');
    proxy.alter('GET', objectOf(whole), (real) => ({ ...real, body: real.body.subarray(0, 30_000) }), 1);
    const shorter = await download(whole);
    t.is(shorter.status, 500, 'an object of another size than recorded');
    t.is(shorter.headers['mex-messageid'], undefined);

    t.true((await download(whole)).body.equals(payload), 'object storage answering right again, so is the download');
  } finally {
    await close();
  }
});

test("a chunk's object missing from the bucket while its message may be downloaded is answered 410, and logged as an error naming the message (once an interval, however often asked): lost data, not an expiry, also of one acknowledged whose payload is kept; an acknowledged message's, its purge under way, is not", async (t) => {
  const { logger, lines } = capturedLogger();
  const server = await startTestServer({ limits: { inlinePayloadBytes: 0 }, worker: false, logger });
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    const lost = await sendMessage(server, lab, gp, 'deleted behind our back');
    const [acknowledgedLost, purging] = [await sendMessage(server, lab, gp, 'acknowledged, still kept'), await sendMessage(server, lab, gp, 'being purged')];
    for (const messageId of [acknowledgedLost, purging]) {
      t.is((await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` })).status, 200);
    }
    // Acknowledged a payload retention ago (its acknowledgement moved back, as time would): a worker purges it now.
    const retentionAgo = server.services.now().getTime() - server.services.periods.payloadRetentionMs;
    await server.redis.hset(redisKeys(server.redisPrefix).message(purging), 'statusAt', String(retentionAgo));
    const local = await ensureLocalServices();
    const s3 = createS3Client({ endpoint: local.s3.endpoint, bucket: server.bucket, region: local.s3.region, forcePathStyle: true, credentials: { accessKeyId: local.s3.accessKeyId, secretAccessKey: local.s3.secretAccessKey } });
    try {
      for (const messageId of [lost, acknowledgedLost, purging]) {
        const objects = await s3.send(new ListObjectsV2Command({ Bucket: server.bucket, Prefix: `messages/${messageId}/` }));
        t.is(objects.Contents?.length, 1);
        await s3.send(new DeleteObjectCommand({ Bucket: server.bucket, Key: objects.Contents![0]!.Key! }));
      }
    } finally {
      s3.destroy();
    }
    // Asked again and again (a watcher's retries): the same loss, logged once an interval.
    for (const messageId of [lost, lost, lost, acknowledgedLost, acknowledgedLost, purging]) {
      const download = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` });
      t.is(download.status, 410);
    }
    const logged = lines.filter((line) => line.level === 50);
    t.deepEqual(logged.map((line) => line.messageId), [lost, acknowledgedLost], JSON.stringify(lines.filter((line) => Number(line.level) >= 40)));
    for (const line of logged) t.regex(line.msg, /missing from object storage/);
    // Counted each time, as an alert needs: five downloads found a chunk missing (not the one whose purge was under way).
    t.regex((await mailboxRequest(server, gp, { path: '/metrics' })).body.toString(), /^meshbox_payload_chunks_missing_total 5$/m);
  } finally {
    await server.close();
  }
});

/** A server whose object storage can be made slow, a sender and a recipient, and the sender's one token. */
async function slowStorageSetup() {
  const local = await ensureLocalServices();
  const proxy = await startTcpProxy(portOf(local.s3.endpoint));
  // Payloads all in object storage, whose answers the test holds back.
  const server = await startTestServer({ s3Endpoint: `http://127.0.0.1:${proxy.port}`, limits: { inlinePayloadBytes: 0 } });
  const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
  const freshToken = () => buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
  const token = freshToken();
  const inbox = async (): Promise<string[]> => (await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox` })).json().messages;
  const post = (path: string, headers: Record<string, string>, body: string, authorization = token) =>
    mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/${path}`, authorization, headers, body });
  /** Whether object storage has had a body of `length` since `before` (its bytes then): more than that has reached it, and no more comes. */
  const storageHasHad = async (before: number, length: number): Promise<boolean> => {
    let seen = -1;
    return eventually(async () => {
      const now = proxy.bytesToBackend() - before;
      const settled = now > length && now === seen;
      seen = now;
      return settled;
    }, 50);
  };
  /**
   * The request goes with `sent` of its body, and its connection is gone before any answer: the
   * whole body once object storage has it (the server then waits for its answer), or only part.
   */
  const cutOff = async (path: string, headers: Record<string, string>, body: string, sent: 'all' | 'part'): Promise<void> => {
    const before = proxy.bytesToBackend();
    const request = openMailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/${path}`, authorization: token, headers: { ...headers, 'content-length': String(body.length) } });
    request.on('error', () => undefined);
    if (sent === 'all') {
      request.end(body);
      await storageHasHad(before, body.length);
    } else {
      request.write(body.slice(0, body.length / 2));
      // Cut once the server has it: cut before, it would leave the retry nothing to be a retry of.
      if (!(await tokenClaimed(server.redis, server.redisPrefix, token))) throw new Error('the server never claimed the token of the request to cut off');
    }
    request.destroy();
  };
  /** An HTTP layer's retry (mesh-client's, of anything but a send): the identical request again, at once and after a 503. */
  const retried = async (path: string, headers: Record<string, string>, body: string) => {
    let response = await post(path, headers, body);
    for (let attempt = 0; attempt < 20 && response.status === 503; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      response = await post(path, headers, body);
    }
    return response;
  };
  const close = async (): Promise<void> => {
    proxy.releaseAnswers();
    await proxy.close();
    await server.close();
  };
  return { proxy, server, gp, inbox, post, freshToken, storageHasHad, cutOff, retried, close };
}

test('a send whose connection drops while object storage stores it, retried at once with its token (as HTTP layers retry), is answered with its message id: delivered once', async (t) => {
  const { proxy, gp, inbox, post, cutOff, retried, close } = await slowStorageSetup();
  try {
    const headers = { 'mex-To': gp.id, 'mex-WorkflowID': 'W', 'mex-LocalID': 'sent-once' };
    const body = 'a result, to arrive once';
    proxy.holdAnswers();
    await cutOff('outbox', headers, body, 'all');
    // While the first try still waits for object storage, its retry is asked to come back.
    const early = await post('outbox', headers, body);
    t.is(early.status, 503);
    t.is(early.headers['retry-after'], '1');
    proxy.releaseAnswers();
    const retry = await retried('outbox', headers, body);
    t.is(retry.status, 202);
    t.deepEqual(await inbox(), [retry.json().message_id], 'delivered once, under the id the retry was told');
    const other = await post('outbox', { ...headers, 'mex-LocalID': 'another message' }, body);
    t.is(other.status, 403, 'the token with another message is a replay');
    t.is((await inbox()).length, 1);
  } finally {
    await close();
  }
});

test('a send cut off part-way through its payload, retried at once with its token, is sent by the retry: delivered once', async (t) => {
  const { proxy, gp, inbox, cutOff, retried, close } = await slowStorageSetup();
  try {
    const headers = { 'mex-To': gp.id, 'mex-WorkflowID': 'W', 'mex-LocalID': 'cut-short' };
    const body = 'x'.repeat(2000);
    proxy.holdAnswers();
    await cutOff('outbox', headers, body, 'part');
    setTimeout(() => proxy.releaseAnswers(), 500);
    const retry = await retried('outbox', headers, body);
    t.is(retry.status, 202);
    t.deepEqual(await inbox(), [retry.json().message_id]);
  } finally {
    await close();
  }
});

test("a final chunk whose connection drops while object storage stores it is answered 202 when retried with its token (as mesh-client retries it), not 'already complete'", async (t) => {
  const { proxy, gp, inbox, post, freshToken, cutOff, close } = await slowStorageSetup();
  try {
    const first = await post('outbox', { 'mex-To': gp.id, 'mex-WorkflowID': 'W', 'mex-Chunk-Range': '1:2' }, 'chunk one, ', freshToken());
    t.is(first.status, 202);
    const messageId = first.json().message_id;
    proxy.holdAnswers();
    await cutOff(`outbox/${messageId}/2`, { 'mex-Chunk-Range': '2:2' }, 'chunk two', 'all');
    proxy.releaseAnswers();
    t.true(await eventually(async () => (await inbox()).length > 0), 'the message completed');
    t.is((await post(`outbox/${messageId}/2`, { 'mex-Chunk-Range': '2:2' }, 'chunk two')).status, 202);
  } finally {
    await close();
  }
});

test('a final chunk retried with its token while its first try is still storing it is answered 202: the first try completes the message', async (t) => {
  const { proxy, server, gp, inbox, post, freshToken, storageHasHad, cutOff, close } = await slowStorageSetup();
  try {
    const first = await post('outbox', { 'mex-To': gp.id, 'mex-WorkflowID': 'W', 'mex-Chunk-Range': '1:2' }, 'chunk one, ', freshToken());
    const messageId = first.json().message_id;
    proxy.holdAnswers();
    await cutOff(`outbox/${messageId}/2`, { 'mex-Chunk-Range': '2:2' }, 'chunk two', 'all');
    // The retry is stored too, and recorded after the first try: the message is complete by then.
    const before = proxy.bytesToBackend();
    const retry = post(`outbox/${messageId}/2`, { 'mex-Chunk-Range': '2:2' }, 'chunk two');
    t.true(await storageHasHad(before, 'chunk two'.length), 'the retry is being stored while the first try is');
    proxy.releaseAnswers();
    t.is((await retry).status, 202);
    t.true(await eventually(async () => (await inbox()).length > 0), 'the message completed');
    const download = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}/2` });
    t.is(download.body.toString(), 'chunk two');
  } finally {
    await close();
  }
});

test("a final chunk recorded in Redis whose answer is lost with the Redis connection (answered 503) keeps its token: its retry is answered 202, not 'already complete'", async (t) => {
  const local = await ensureLocalServices();
  const direct = new Redis(local.redisUrl);
  const proxy = await startTcpProxy(portOf(local.redisUrl));
  let holdNextRecord = false;
  const server = await startTestServer({
    redisUrl: `redis://127.0.0.1:${proxy.port}`,
    worker: false,
    appServices: (services) => ({
      ...services,
      messages: overriding(services.messages, {
        storeChunk: (...args: Parameters<typeof services.messages.storeChunk>) => {
          // The chunk is in object storage; its record goes to Redis, and the answer will not come back.
          if (holdNextRecord) proxy.holdAnswers();
          return services.messages.storeChunk(...args);
        },
      }),
    }),
  });
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    const upload = (messageId: string, authorization?: string) =>
      mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox/${messageId}/2`, headers: { 'mex-Chunk-Range': '2:2' }, body: 'chunk two', ...(authorization ? { authorization } : {}) });
    // A message completed first: Redis has the chunk script loaded (a first run would go as NOSCRIPT, then EVAL).
    const warm = await sendMessage(server, lab, gp, 'a', { 'mex-WorkflowID': 'W', 'mex-Chunk-Range': '1:2' });
    t.is((await upload(warm)).status, 202);
    const messageId = await sendMessage(server, lab, gp, 'chunk one, ', { 'mex-WorkflowID': 'W', 'mex-Chunk-Range': '1:2' });
    const authorization = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
    holdNextRecord = true;
    const firstTry = upload(messageId, authorization);
    const key = redisKeys(server.redisPrefix).message(messageId);
    t.true(await eventually(async () => (await direct.hget(key, 'status')) === 'accepted', 10), 'the final chunk is recorded in Redis');
    holdNextRecord = false;
    // The connection goes before the answer comes back; Redis is back a moment later.
    await proxy.cut();
    t.is((await firstTry).status, 503);
    await proxy.restore();
    proxy.releaseAnswers();
    // mesh-client retries a chunk with its token after a 503: once the first try has kept its token's claim, or given it back.
    await server.requestsSettled();
    const retry = await upload(messageId, authorization);
    t.is(retry.status, 202, retry.body.toString());
    t.deepEqual((await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox` })).json().messages, [warm, messageId]);
  } finally {
    direct.disconnect();
    await server.close();
    await proxy.close();
  }
});

/** A server that reaches the Redis at `redisPort` through a proxy the test controls, a sender and a recipient. */
async function serverBehindRedisProxy(redisPort: number, { worker }: { worker?: WorkerTiming } = {}) {
  const proxy = await startTcpProxy(redisPort);
  const server = await startTestServer({ redisUrl: `redis://127.0.0.1:${proxy.port}`, worker: false });
  if (worker) await server.connections.startWorker(pino({ level: 'silent' }), undefined, worker);
  // The server first: its worker finishes with Redis before it stops, which it could not with the proxy gone.
  const close = async (): Promise<void> => {
    await server.close();
    await proxy.close();
  };
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    return { proxy, server, lab, gp, close };
  } catch (error) {
    await close();
    throw error;
  }
}

test('Redis unreachable: requests fail with 503 (never 500 or a hang), /readyz says so, and service resumes when it is back', async (t) => {
  const { proxy, server, lab, gp, close } = await serverBehindRedisProxy(portOf((await ensureLocalServices()).redisUrl));
  try {
    await proxy.cut();
    const refused = await mailboxRequest(server, lab, {
      method: 'POST',
      path: `/messageexchange/${lab.id}/outbox`,
      headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'W' },
      body: 'x',
    });
    t.is(refused.status, 503);
    t.is(refused.json().detail[0].code, '503');
    const ready = await rawRequest(server, { path: '/readyz', clientCertificate: lab });
    t.is(ready.status, 503);
    t.like(ready.json(), { redis: 'unreachable' });

    await proxy.restore();
    t.true(await eventually(async () => (await rawRequest(server, { path: '/readyz', clientCertificate: lab })).status === 200));
    const messageId = await sendMessage(server, lab, gp, 'after Redis came back');
    const download = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` });
    t.is(download.body.toString(), 'after Redis came back');
  } finally {
    await close();
  }
});

test('a Redis connection gone silent (open, never answering again) is dropped after 10 s and made anew: requests are answered, not held until their timeout', async (t) => {
  const { proxy, server, lab, gp, close } = await serverBehindRedisProxy(portOf((await ensureLocalServices()).redisUrl));
  try {
    proxy.silenceOpenConnections();
    const sent = await mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox`, headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'W' }, body: 'x' });
    // Sent again on the new connection, or refused for the client to retry: either way answered.
    t.true(sent.status === 202 || sent.status === 503, `${sent.status} ${sent.body.toString()}`);
    const messageId = await sendMessage(server, lab, gp, 'on the new connection');
    t.is((await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` })).body.toString(), 'on the new connection');
  } finally {
    await close();
  }
});

test("the lifecycle worker's Redis connections gone silent are dropped and made anew: sweeps resume, and a due check is done", async (t) => {
  const local = await ensureLocalServices();
  // Two answers the silence may lose hold things up by design, shortened here:
  // - a sweep job BullMQ took leaves no next job (BullMQ adds it as the worker takes the current
  //   one): sweeps start again once the schedulers are set anew, each minute in production;
  // - a claim of the due check, carried out but unanswered, holds it until its lease ends.
  const worker = { sweepEveryMs: 200, schedulersEveryMs: 3_000, leaseMs: 3_000 };
  const { proxy, server, lab, gp, close } = await serverBehindRedisProxy(portOf(local.redisUrl), { worker });
  // Straight to Redis: the server's own connection goes silent with the worker's.
  const direct = new Redis(local.redisUrl);
  const schedule = new LifecycleSchedule(direct, redisKeys(server.redisPrefix));
  try {
    const messageId = await sendMessage(server, lab, gp, 'checked after the silence');
    proxy.silenceOpenConnections();
    const hourFromNow = () => Date.now() + 60 * 60_000;
    // Due now, and a sweep moves it on to the message's expiry, days away.
    await schedule.schedule(messageId, new Date());
    t.true((await schedule.nextCheck(messageId))!.getTime() < hourFromNow(), 'due now');
    // The worker's connections wait on Redis for up to 10 s at a time: they are given longer.
    const moved = await eventually(async () => ((await schedule.nextCheck(messageId))?.getTime() ?? 0) > hourFromNow(), 80);
    t.true(moved, 'a sweep has checked the message');
  } finally {
    direct.disconnect();
    await close();
  }
});

test('a Redis ACL user that may not run INFO is served all the same: the checks INFO answers are skipped', async (t) => {
  const redis = await startTestRedis();
  let server: Awaited<ReturnType<typeof startTestServer>> | undefined;
  try {
    await redis.admin.acl('SETUSER', 'meshbox', 'on', '>a-password', '~*', '&*', '+@all', '-info');
    server = await startTestServer({ redisUrl: `redis://meshbox:a-password@127.0.0.1:${redis.port}`, worker: false });
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    t.is((await rawRequest(server, { path: '/readyz', clientCertificate: lab })).status, 200);
    const messageId = await sendMessage(server, lab, gp, 'sent as a restricted user');
    t.is((await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` })).body.toString(), 'sent as a restricted user');
  } finally {
    await server?.close();
    await redis.stop();
  }
});

test('a Redis failover (the Redis reached made a replica, its address then leading to the new primary): 503 and not ready meanwhile, then the server reconnects by itself and nothing is lost', async (t) => {
  const [first, second] = [await startTestRedis(), await startTestRedis()];
  let setting: Awaited<ReturnType<typeof serverBehindRedisProxy>> | undefined;
  try {
    await second.admin.replicaof('127.0.0.1', String(first.port));
    setting = await serverBehindRedisProxy(first.port);
    const { proxy, server, lab, gp } = setting;
    const before = await sendMessage(server, lab, gp, 'before the failover');
    // WAIT would cover only the writes of the connection asking it (none): the replica's offset is compared instead.
    const written = await replicationOffset(first.admin, 'master_repl_offset');
    t.true(await eventually(async () => (await replicationOffset(second.admin, 'slave_repl_offset')) >= written), 'the replica has it all');

    // The roles swap, as Sentinel or a managed service swaps them; the address still leads to the
    // old primary, cut off from the new one (a replica that synced with it would drop its clients).
    await second.admin.replicaof('NO', 'ONE');
    await first.admin.replicaof('127.0.0.1', String(await freePort()));
    const send = () =>
      mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox`, headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'W' }, body: 'after' });
    const refused = await send();
    t.is(refused.status, 503, refused.body.toString());
    t.is((await rawRequest(server, { path: '/readyz', clientCertificate: lab })).status, 503);
    // The connection the readiness check dropped (ended) is made again, to the same address,
    // before the address moves on: so only a refused write can move it on.
    const connection = server.redis;
    t.true(await eventually(async () => connection.status === 'ready' && !connection.stream.writableEnded), 'the server is connected again to the old primary');

    // The address now leads to the new primary: a write refused as READONLY makes the server
    // reconnect (the readiness check, not asked meanwhile, would too).
    proxy.retarget(second.port);
    t.true(await eventually(async () => (await send()).status === 202), 'writes reach the new primary');
    t.is((await rawRequest(server, { path: '/readyz', clientCertificate: lab })).status, 200);
    t.is((await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${before}` })).body.toString(), 'before the failover');
  } finally {
    await setting?.close();
    await Promise.all([first.stop(), second.stop()]);
  }
});

test('a server that cannot reach Redis or its bucket at start exits 1 with one line naming which and where, no stack trace', async (t) => {
  const dir = await temporaryDirectory(t, 'start');
  const ca = createCertificateAuthority({ commonName: 'start-up test CA' });
  const server = issueServerCertificate({ ca, commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: [] });
  await writeFile(join(dir, 'ca.crt'), ca.certPem);
  await writeFile(join(dir, 'server.crt'), server.certPem);
  await writeFile(join(dir, 'server.key'), server.keyPem);
  const local = await ensureLocalServices();
  const start = (backends: Record<string, string>) =>
    new Promise<{ code: number | null; output: string }>((done) => {
      const environment = {
        PATH: process.env.PATH,
        MESHBOX_PORT: '1',
        MESHBOX_TLS_CERT: join(dir, 'server.crt'),
        MESHBOX_TLS_KEY: join(dir, 'server.key'),
        MESHBOX_TLS_CA: join(dir, 'ca.crt'),
        MESHBOX_SHARED_KEY: 'shared',
        MESHBOX_SECRET_KEY: TEST_SECRET_KEY,
        MESHBOX_S3_ACCESS_KEY_ID: local.s3.accessKeyId,
        MESHBOX_S3_SECRET_ACCESS_KEY: local.s3.secretAccessKey,
        ...backends,
      };
      execFile(process.execPath, [join(REPO_ROOT, 'server/src/main.ts')], { env: environment }, (error, stdout, stderr) =>
        done({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, output: stdout + stderr }),
      );
    });
  const noRedis = await start({ MESHBOX_REDIS_URL: 'redis://127.0.0.1:1', MESHBOX_S3_ENDPOINT: local.s3.endpoint });
  t.is(noRedis.code, 1);
  t.is(noRedis.output, 'meshbox: cannot reach Redis at redis://127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1\n');
  const notCluster = await start({ MESHBOX_REDIS_URL: local.redisUrl, MESHBOX_REDIS_CLUSTER: 'true', MESHBOX_S3_ENDPOINT: local.s3.endpoint });
  t.is(notCluster.code, 1);
  t.regex(notCluster.output, /^meshbox: cannot reach Redis at cluster redis:\/\/127\.0\.0\.1:\d+: .*slots cache.* \(is it a Redis Cluster\? For a standalone Redis, MESHBOX_REDIS_CLUSTER=false\)\n$/);
  // ioredis would only report the failed SELECT, and the server would keep its state in database 0.
  const noDatabase = await start({ MESHBOX_REDIS_URL: `${local.redisUrl}/99`, MESHBOX_S3_ENDPOINT: local.s3.endpoint });
  t.is(noDatabase.code, 1);
  t.regex(noDatabase.output, /^meshbox: Redis at redis:\/\/127\.0\.0\.1:\d+ has no database 99 \(MESHBOX_REDIS_URL\): ERR DB index is out of range\n$/);
  const noStorage = await start({ MESHBOX_REDIS_URL: local.redisUrl, MESHBOX_S3_ENDPOINT: 'http://127.0.0.1:1' });
  t.is(noStorage.code, 1);
  t.regex(noStorage.output, /^meshbox: cannot use bucket meshbox at http:\/\/127\.0\.0\.1:1: .+\n$/);

  // Both reachable, the address not this machine's: named by its settings, with a misspelt setting as the likely cause.
  const deployment = { prefix: `test:${randomUUID()}:`, bucket: `start-${randomUUID().slice(0, 8)}` };
  const redis = new Redis(local.redisUrl);
  const s3 = createS3Client({ endpoint: local.s3.endpoint, bucket: deployment.bucket, region: local.s3.region, forcePathStyle: true, credentials: { accessKeyId: local.s3.accessKeyId, secretAccessKey: local.s3.secretAccessKey } });
  t.teardown(async () => {
    await removeDeploymentState(redis, deployment.prefix, s3, deployment.bucket);
    redis.disconnect();
    s3.destroy();
  });
  const noListen = await start({
    MESHBOX_REDIS_URL: local.redisUrl,
    MESHBOX_S3_ENDPOINT: local.s3.endpoint,
    MESHBOX_REDIS_PREFIX: deployment.prefix,
    MESHBOX_S3_BUCKET: deployment.bucket,
    MESHBOX_HOST: '192.0.2.1',
    MESHBOX_LOG_LEVLE: 'debug',
  });
  t.is(noListen.code, 1);
  t.regex(noListen.output, /\nmeshbox: cannot listen on 192\.0\.2\.1:1 \(MESHBOX_HOST, MESHBOX_PORT\): .*EADDRNOTAVAIL.*\nmeshbox: MESHBOX_LOG_LEVLE is not a setting \(ignored\): MESHBOX_LOG_LEVEL\?\n$/);
  t.notRegex(noListen.output, /\n\s+at /, 'no stack trace');
  // A port another process holds (a meshbox started before): what to do about it.
  const holder = createNetServer().listen(0, '127.0.0.1');
  await once(holder, 'listening');
  t.teardown(() => holder.close());
  const taken = await start({
    MESHBOX_REDIS_URL: local.redisUrl,
    MESHBOX_S3_ENDPOINT: local.s3.endpoint,
    MESHBOX_REDIS_PREFIX: deployment.prefix,
    MESHBOX_S3_BUCKET: deployment.bucket,
    MESHBOX_PORT: String((holder.address() as AddressInfo).port),
  });
  t.is(taken.code, 1);
  t.regex(taken.output, /^meshbox: cannot listen on 127\.0\.0\.1:\d+ \(MESHBOX_HOST, MESHBOX_PORT\): the port is in use \(another meshbox already running\? or give another MESHBOX_PORT: `MESHBOX_PORT=9443 npm run setup` points the demo profiles at it\)\n$/);
  // Neither left its settings on record: for half a minute they would refuse the deployment's processes, as if running.
  t.deepEqual(await redis.hgetall(redisKeys(deployment.prefix).processSettings), {});

  // A peer that takes the connection and never answers (a proxy whose backend is down) is given up on too.
  const silent = createNetServer(() => {});
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const silentUrl = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
  try {
    const [silentRedis, silentStorage] = await Promise.all([
      start({ MESHBOX_REDIS_URL: `redis://${silentUrl}`, MESHBOX_S3_ENDPOINT: local.s3.endpoint }),
      start({ MESHBOX_REDIS_URL: local.redisUrl, MESHBOX_S3_ENDPOINT: `http://${silentUrl}` }),
    ]);
    t.is(silentRedis.code, 1);
    t.is(silentRedis.output, `meshbox: cannot reach Redis at redis://${silentUrl}: Socket timeout. Expecting data, but didn't receive any in 10000ms.\n`);
    t.is(silentStorage.code, 1);
    t.is(silentStorage.output, `meshbox: cannot use bucket meshbox at http://${silentUrl}: no answer within 20000 ms\n`);
  } finally {
    silent.close();
  }
});

test('a start-up step on Redis that fails after Redis first answered (a cluster whose master for the slot is down) names Redis, as a reason rather than a stack trace', async (t) => {
  const target = { redisUrl: 'redis://10.0.0.7:7000', redisCluster: true };
  const failed = await t.throwsAsync(atStartOnRedis(target, Promise.reject(new Error('Connection is closed.'))), { instanceOf: BackendUnreachableError });
  t.regex(failed?.message ?? '', /^cannot use Redis at .*10\.0\.0\.7:7000.*: Connection is closed\.$/);
  t.is(await atStartOnRedis(target, Promise.resolve('fine')), 'fine');
});

test('a server given another secret key than its mailboxes were registered under refuses to start, saying so', async (t) => {
  const server = await startServerProcess();
  try {
    await server.createMailbox();
    const error = await t.throwsAsync(startServerProcess({ MESHBOX_SECRET_KEY: 'another-secret-key' }, { deployment: server.deployment }));
    t.regex(error?.message ?? '', /the secret key \(from MESHBOX_SECRET_KEY\) is not the one the mailbox passwords in this Redis \(prefix [^)]+\) are encrypted under/);
  } finally {
    await server.stop();
  }
});

test("a process started with other message periods, or another bucket, than the deployment's running processes refuses to start, naming them; once those have stopped, it starts", async (t) => {
  const server = await startServerProcess();
  const started: Awaited<ReturnType<typeof startServerProcess>>[] = [];
  try {
    const longer = { MESHBOX_INBOX_EXPIRY_SECONDS: '864000' };
    const refused = await t.throwsAsync(startServerProcess({ ...longer, MESHBOX_ROLE: 'worker' }, { deployment: server.deployment }));
    t.regex(refused?.message ?? '', /MESHBOX_INBOX_EXPIRY_SECONDS is 864000 here, 432000 in the processes running \(Redis prefix [^)]+\): every api and worker process of a deployment must have the same message periods, bucket, request limits and shared key/);
    // A misspelt bucket: its API processes would answer 410 for what the others stored, its worker purge nothing.
    const misspelt = `${server.deployment.bucket}x`;
    t.teardown(async () => {
      const local = await ensureLocalServices();
      const s3 = createS3Client({ endpoint: local.s3.endpoint, bucket: misspelt, region: local.s3.region, forcePathStyle: true, credentials: { accessKeyId: local.s3.accessKeyId, secretAccessKey: local.s3.secretAccessKey } });
      await removeBucket(s3, misspelt).catch(() => undefined);
      s3.destroy();
    });
    const otherBucket = await t.throwsAsync(startServerProcess({ MESHBOX_S3_BUCKET: misspelt }, { deployment: server.deployment }));
    t.regex(otherBucket?.message ?? '', new RegExp(`MESHBOX_S3_BUCKET is ${misspelt} here, ${server.deployment.bucket} in the processes running`));
    started.push(await startServerProcess({ MESHBOX_ROLE: 'worker' }, { deployment: server.deployment }));
    // Stopped, each says it no longer counts: a deployment's settings change with every process stopped.
    t.is(await started[0]!.kill('SIGTERM'), 0);
    t.is(await server.kill('SIGTERM'), 0);
    started.push(await startServerProcess(longer, { deployment: server.deployment }));
  } finally {
    for (const process of started) await process.stop();
    await server.stop();
  }
});

test("a process started with another shared key, or other request limits, than the deployment's running processes refuses to start, naming them (never a key, nor its fingerprint); with theirs, it starts", async (t) => {
  const server = await startServerProcess();
  let alike: Awaited<ReturnType<typeof startServerProcess>> | undefined;
  try {
    // Behind a load balancer it would refuse every token the others accept: 403s now and then, each a failed login.
    const otherKey = 'another shared key';
    const refused = await t.throwsAsync(startServerProcess({ MESHBOX_SHARED_KEY: otherKey }, { deployment: server.deployment }));
    const said = refused?.message ?? '';
    t.regex(said, /meshbox: MESHBOX_SHARED_KEY differs from that of the processes running \(Redis prefix [^)]+\): every api and worker process of a deployment must have the same message periods, bucket, request limits and shared key/);
    for (const secret of [otherKey, server.deployment.sharedKey, 'scrypt']) t.false(said.includes(secret), `${secret} not said`);
    // One upload's chunks would be accepted or refused by whichever process each reached.
    const otherLimits = { MESHBOX_MAX_CHUNK_BYTES: '1000', MESHBOX_MAX_CHUNKS: '20', MESHBOX_MAX_MESSAGE_BYTES: '20000' };
    const smaller = await t.throwsAsync(startServerProcess({ ...otherLimits, MESHBOX_ROLE: 'worker' }, { deployment: server.deployment }));
    t.regex(
      smaller?.message ?? '',
      /MESHBOX_MAX_CHUNK_BYTES is 1000 here, 104857600 in the processes running; MESHBOX_MAX_CHUNKS is 20 here, 10000 in the processes running; MESHBOX_MAX_MESSAGE_BYTES is 20000 here, 107374182400 in the processes running \(Redis prefix/,
    );
    alike = await startServerProcess({ MESHBOX_ROLE: 'worker' }, { deployment: server.deployment });
  } finally {
    await alike?.stop();
    await server.stop();
  }
});

test('SIGTERM while Redis is away still ends the process: at the latest once the shutdown deadline and its grace have passed, then with exit 1, saying why', async (t) => {
  const local = await ensureLocalServices();
  const proxy = await startTcpProxy(Number(new URL(local.redisUrl).port));
  const server = await startServerProcess({ MESHBOX_LOG_LEVEL: 'info' }, { redis: { redisUrl: `redis://127.0.0.1:${proxy.port}`, redisCluster: false } });
  try {
    await proxy.cut();
    // A process that never ended would hold the test until its timeout.
    const code = await server.kill('SIGTERM');
    // Most often closing the worker's connections waits on the Redis that is away, and the last
    // resort ends it; should they have closed by themselves first, it ends as any stop does.
    if (code === 0) t.regex(server.output(), /"msg":"stopped"/);
    else {
      t.is(code, 1);
      t.regex(server.output(), /shutdown did not finish \(a backend not answering\?\): exiting anyway/);
    }
  } finally {
    // Redis back for the harness, which clears the deployment's state through the same proxy.
    await proxy.restore();
    await server.stop().catch(() => undefined);
    await proxy.close();
  }
});
