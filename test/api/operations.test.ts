import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { gzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { Agent } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import test from 'ava';
import { pino } from 'pino';
import { ensureLocalServices } from '../../scripts/services/index.ts';
import { createS3Client } from '../../server/src/connections.ts';
import { checkReadiness } from '../../server/src/domain/health.ts';
import { AUDIT_SHARDS } from '../../server/src/store/audit-log.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import { PayloadStore } from '../../server/src/store/payloads.ts';
import { freePort } from '../../scripts/services/processes.ts';
import { removeBucket } from '../support/cleanup.ts';
import { startTestServer, type TestMailbox, type TestServer } from '../support/harness.ts';
import { capturedLogger } from '../../server/test/support/captured-log.ts';
import { startServerProcess } from '../support/server-process.ts';
import { overriding } from '../support/overriding.ts';
import { buildAuthorizationHeader } from '../../shared/src/protocol/index.ts';
import { rawTlsExchange } from '../support/raw-tls.ts';
import { mailboxRequest, openMailboxRequest, rawRequest, readText, sendMessage, streamingRequest } from '../support/http.ts';

let server: TestServer;
let lab: TestMailbox;
let gp: TestMailbox;

test.before(async () => {
  server = await startTestServer();
  lab = await server.createMailbox();
  gp = await server.createMailbox();
});

test.after.always(async () => {
  await server?.close();
});

test('/healthz and /readyz answer when Redis and object storage are reachable', async (t) => {
  const health = await rawRequest(server, { path: '/healthz', clientCertificate: lab });
  t.is(health.status, 200);
  const ready = await rawRequest(server, { path: '/readyz', clientCertificate: lab });
  t.is(ready.status, 200);
  t.deepEqual(ready.json(), { status: 'ready', redis: 'ok', objectStorage: 'ok' });
});

test('probes of readiness asked together share one check, and a ready answer stands for a second: a certificate asking as fast as it can does not drive the backends with it', async (t) => {
  let checks = 0;
  // Held: the probes of a loaded machine may take longer than the second a ready answer stands.
  const clock = { now: Date.now() };
  const probed = await startTestServer({
    worker: false,
    appServices: (services) => ({
      ...services,
      now: () => new Date(clock.now),
      payloads: overriding(services.payloads, {
        ping: async (withinMs: number) => {
          checks += 1;
          return services.payloads.ping(withinMs);
        },
      }),
    }),
  });
  t.teardown(() => probed.close());
  const asker = await probed.createMailbox();
  const answers = await Promise.all(Array.from({ length: 40 }, () => rawRequest(probed, { path: '/readyz', clientCertificate: asker })));
  t.deepEqual([...new Set(answers.map(({ status }) => status))], [200]);
  t.is(checks, 1);
  clock.now += 999;
  t.is((await rawRequest(probed, { path: '/readyz', clientCertificate: asker })).status, 200);
  t.is(checks, 1, 'within the second: not checked');
  clock.now += 1;
  t.is((await rawRequest(probed, { path: '/readyz', clientCertificate: asker })).status, 200);
  t.is(checks, 2, 'checked again once the second is over');
  clock.now -= 60_000;
  t.is((await rawRequest(probed, { path: '/readyz', clientCertificate: asker })).status, 200);
  t.is(checks, 3, 'the clock set back: checked again');
});

test('readiness given up on object storage that takes the connection and never answers ends its request: no socket held by the probe', async (t) => {
  const open = new Set<import('node:net').Socket>();
  const silent = createNetServer((socket) => {
    open.add(socket);
    // Read (and drop) what comes, so that the client's close is noticed.
    socket.resume();
    socket.on('close', () => open.delete(socket));
  });
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const endpoint = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const s3 = createS3Client({ endpoint, bucket: 'x', region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  try {
    const readiness = await checkReadiness({ ...server.services, payloads: new PayloadStore(s3, 'x') });
    t.deepEqual(readiness, { ready: false, redis: true, objectStorage: 'unreachable' });
    for (let attempt = 0; attempt < 40 && open.size > 0; attempt++) await new Promise((resolve) => setTimeout(resolve, 50));
    t.is(open.size, 0, "the probe's connection is closed, not left to the client's 120 s timeout");
  } finally {
    s3.destroy();
    silent.close();
  }
});

test('readiness reports object storage that does not answer', async (t) => {
  const deadEndpoint = `http://127.0.0.1:${await freePort()}`;
  const s3 = createS3Client({ endpoint: deadEndpoint, bucket: 'x', region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  try {
    const readiness = await checkReadiness({ ...server.services, payloads: new PayloadStore(s3, 'x') });
    t.deepEqual(readiness, { ready: false, redis: true, objectStorage: 'unreachable' });
  } finally {
    s3.destroy();
  }
});

test('processes starting together on a new bucket all find it ready: the one refused as another created it first is not failed', async (t) => {
  const { s3: local } = await ensureLocalServices();
  const bucket = `race-${randomBytes(6).toString('hex')}`;
  const s3 = createS3Client({ endpoint: local.endpoint, bucket, region: local.region, forcePathStyle: true, credentials: { accessKeyId: local.accessKeyId, secretAccessKey: local.secretAccessKey } });
  try {
    const starts = await Promise.allSettled(Array.from({ length: 3 }, () => new PayloadStore(s3, bucket).ensureBucket()));
    t.deepEqual(starts.map(({ status }) => status), ['fulfilled', 'fulfilled', 'fulfilled'], JSON.stringify(starts));
  } finally {
    await removeBucket(s3, bucket);
    s3.destroy();
  }
});

test('the S3 client logs neither each request nor an expected failure, only its own warnings', async (t) => {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
  const { s3: local } = await ensureLocalServices();
  const bucket = `log-${randomBytes(6).toString('hex')}`;
  const s3 = createS3Client(
    { endpoint: local.endpoint, bucket, region: local.region, forcePathStyle: true, credentials: { accessKeyId: local.accessKeyId, secretAccessKey: local.secretAccessKey } },
    logger,
  );
  const payloads = new PayloadStore(s3, bucket);
  try {
    // A new bucket: its existence check fails with 404 first, then it is created.
    await payloads.ensureBucket();
    const chunk = randomBytes(1000);
    const object = { messageId: 'M1', number: 1, version: '' };
    await payloads.putChunk(object, Readable.from([chunk]), chunk.length, new AbortController());
    const stored = await payloads.getChunk(object);
    t.is(stored?.size, chunk.length);
    if (stored?.body instanceof Readable) await stored.body.toArray();
    t.is(await payloads.getChunk({ ...object, number: 2 }), undefined);
    await payloads.deleteMessage('M1');
    t.deepEqual(lines, [], 'nothing logged for requests that went as expected');
    s3.config.logger.warn('a setting is deprecated');
    t.deepEqual(lines.map((line) => JSON.parse(line) as { level: number; component: string; msg: string; content: unknown }).map(({ level, component, msg, content }) => ({ level, component, msg, content })), [
      { level: 40, component: 's3', msg: 'S3 client warning', content: ['a setting is deprecated'] },
    ]);
  } finally {
    await removeBucket(s3, bucket);
    s3.destroy();
  }
});

test.serial('the audit log records who sent, downloaded and acknowledged what, in order', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'audited');
  await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` });
  await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` });
  const entries = (await server.services.audit.tail(100)).filter((entry) => entry.messageId === messageId);
  t.deepEqual(
    entries.map(({ action, actor }) => ({ action, actor })),
    [
      { action: 'send', actor: lab.id },
      { action: 'download', actor: gp.id },
      { action: 'acknowledge', actor: gp.id },
    ],
  );
  t.regex(entries[0]!.detail ?? '', new RegExp(`to ${gp.id}`));
  t.true(entries.every((entry) => entry.at.getTime() <= Date.now()));
});

test.serial("the audit log is spread over several streams (one would put every send on one cluster node), each message's entries in one of them", async (t) => {
  const messageIds = await Promise.all(Array.from({ length: 12 }, () => sendMessage(server, lab, gp, 'spread')));
  for (const messageId of messageIds) await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` });
  const keys = Array.from({ length: AUDIT_SHARDS }, (_, shard) => redisKeys(server.redisPrefix).auditLog(shard));
  const streams = await Promise.all(keys.map((key) => server.redis.xrange(key, '-', '+')));
  const holding = (messageId: string) => streams.filter((entries) => entries.some(([, fields]) => fields.includes(messageId))).length;
  t.true(messageIds.every((messageId) => holding(messageId) === 1));
  t.true(new Set(messageIds.map((messageId) => streams.findIndex((entries) => entries.some(([, fields]) => fields.includes(messageId))))).size > 1);
  // Read back merged, newest last.
  const times = (await server.services.audit.tail(1000)).map((entry) => entry.at.getTime());
  t.deepEqual(times, [...times].sort((a, b) => a - b));
  // Two streams may each give an entry the same stream id: the ids read back tell them apart.
  const streamId = `${Date.now() + 1000}-0`;
  for (const key of keys.slice(0, 2)) await server.redis.xadd(key, streamId, 'action', 'same-id', 'actor', 'test');
  const alike = (await server.services.audit.tail(1000)).filter((entry) => entry.action === 'same-id');
  t.deepEqual(alike.map((entry) => entry.id).sort(), [`${streamId}/0`, `${streamId}/1`]);
});

test.serial('refused requests leave nothing in the audit log', async (t) => {
  const before = (await server.services.audit.tail(1000)).length;
  await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/20260101000000000000_ABCDEF` });
  await mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox`, headers: { 'mex-To': 'NOBODY', 'mex-WorkflowID': 'W' }, body: 'x' });
  const after = (await server.services.audit.tail(1000)).length;
  t.is(after, before);
});

test('the access log line is written once the answer has ended: a download broken off is logged incomplete, with its whole time, not as the 200 its headers carried', async (t) => {
  const running = await startServerProcess({ MESHBOX_LOG_LEVEL: 'info' });
  try {
    const [sender, recipient] = [await running.createMailbox(), await running.createMailbox()];
    const messageId = await sendMessage(running, sender, recipient, randomBytes(8 * 1024 * 1024));
    const path = `/messageexchange/${recipient.id}/inbox/${messageId}`;
    const download = await streamingRequest(running, recipient, { method: 'GET', path });
    t.is(download.statusCode, 200);
    await once(download, 'data');
    download.destroy();
    const logged = (): { status?: unknown } | undefined => {
      const line = running.output().split('\n').find((entry) => entry.includes('"msg":"request"') && entry.includes(`"path":"${path}"`));
      return line ? (JSON.parse(line) as { status?: unknown }) : undefined;
    };
    for (let attempt = 0; attempt < 100 && !logged(); attempt++) await new Promise((resolve) => setTimeout(resolve, 50));
    t.is(logged()?.status, 'incomplete');
  } finally {
    await running.stop();
  }
});

test('a body refused while it streams in (over the chunk limit, or gzip that is not) is logged with its status, and the server carries on: its request is gone by then, which the access log does not trip on', async (t) => {
  const running = await startServerProcess({ MESHBOX_LOG_LEVEL: 'info', MESHBOX_MAX_CHUNK_BYTES: '1000', MESHBOX_INLINE_PAYLOAD_BYTES: '0' });
  try {
    const [sender, recipient] = [await running.createMailbox(), await running.createMailbox()];
    const refusals: { headers: Record<string, string>; bytes: number; status: number }[] = [
      { headers: {}, bytes: 5_000, status: 413 },
      { headers: { 'content-encoding': 'gzip' }, bytes: 500, status: 422 },
    ];
    for (const { headers, bytes, status } of refusals) {
      const request = openMailboxRequest(running, sender, {
        method: 'POST',
        path: `/messageexchange/${sender.id}/outbox`,
        headers: { 'mex-To': recipient.id, 'mex-WorkflowID': 'TEST_WF', ...headers },
      });
      request.on('error', () => {});
      request.write(Buffer.alloc(bytes, 'x')); // chunked, and never ended: the server refuses it mid-way
      const [response] = (await once(request, 'response')) as [IncomingMessage];
      response.resume();
      t.is(response.statusCode, status);
      request.destroy();
      const requestId = String(response.headers['x-request-id']);
      const logged = (): string | undefined => running.output().split('\n').find((entry) => entry.includes(`"requestId":"${requestId}"`) && entry.includes('"msg":"request"'));
      for (let attempt = 0; attempt < 100 && !logged(); attempt++) await new Promise((resolve) => setTimeout(resolve, 50));
      const line = logged();
      t.like(line ? (JSON.parse(line) as object) : undefined, { status, certificate: { commonName: sender.id } });
      t.is((await mailboxRequest(running, sender, { path: '/messageexchange/_ping' })).status, 200, 'the server is still up');
    }
  } finally {
    await running.stop();
  }
});

test("a client's long text is logged cut short: a 30 KB path (refused, as most such requests are) and a handshake's 30 KB client details", async (t) => {
  const { logger, lines } = capturedLogger();
  const own = await startTestServer({ logger, worker: false });
  try {
    const mailbox = await own.createMailbox();
    const longPath = `/messageexchange/${mailbox.id}/inbox/${'x'.repeat(30_000)}`;
    t.is((await mailboxRequest(own, mailbox, { path: longPath })).status, 404);
    const handshake = await mailboxRequest(own, mailbox, { path: `/messageexchange/${mailbox.id}`, headers: { 'mex-ClientVersion': 'v'.repeat(30_000) } });
    t.is(handshake.status, 200);
    for (const line of lines) t.true(JSON.stringify(line).length < 2_000, `${String(line.msg)}: ${JSON.stringify(line).length} characters`);
    const request = lines.find((line) => line.msg === 'request' && String(line.path).startsWith(longPath.slice(0, 100)));
    t.regex(String(request?.path), /… \(30\d\d\d characters\)$/);
  } finally {
    await own.close();
  }
});

test("a refused request's access-log line carries its MESH error code, and a 403's reason, which its answer does not: every 403 answers alike, but an operator must tell a wrong password from a replayed token or a client's clock", async (t) => {
  const { logger, lines } = capturedLogger();
  const own = await startTestServer({ logger, worker: false });
  try {
    const [lab, gp] = [await own.createMailbox(), await own.createMailbox()];
    const loggedFor = async (response: { readonly headers: Record<string, unknown> }): Promise<Record<string, unknown> | undefined> => {
      const requestId = String(response.headers['x-request-id']);
      const find = () => lines.find((line) => line.msg === 'request' && line.requestId === requestId);
      for (let attempt = 0; attempt < 100 && !find(); attempt++) await new Promise((resolve) => setTimeout(resolve, 20));
      return find();
    };
    const inbox = `/messageexchange/${lab.id}/inbox`;
    const wrongPassword = await mailboxRequest(own, { ...lab, password: 'wrong' }, { path: inbox });
    const authorization = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: own.sharedKey });
    t.is((await mailboxRequest(own, lab, { path: inbox, authorization })).status, 200);
    const replayed = await mailboxRequest(own, lab, { path: `/messageexchange/${lab.id}/count`, authorization });
    const staleClock = await mailboxRequest(own, lab, {
      path: inbox,
      authorization: buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: own.sharedKey, at: new Date(Date.now() - 3 * 3_600_000) }),
    });
    const otherCertificate = await mailboxRequest(own, { ...gp, id: lab.id, password: lab.password }, { path: inbox });
    const answered = (response: typeof wrongPassword): unknown => {
      const { internal_id: _id, ...rest } = response.json() as Record<string, unknown>;
      return { status: response.status, ...rest };
    };
    for (const refused of [replayed, staleClock, otherCertificate]) t.deepEqual(answered(refused), answered(wrongPassword), 'answered alike');
    t.like(await loggedFor(wrongPassword), { status: 403, error: '403', reason: 'wrong password' });
    t.like(await loggedFor(replayed), { status: 403, error: '403', reason: 'token used before' });
    t.like(await loggedFor(staleClock), { status: 403, error: '403', reason: 'token timestamp out of window' });
    t.like(await loggedFor(otherCertificate), { status: 403, error: '403', reason: 'certificate not for the mailbox' });
    const malformed = await mailboxRequest(own, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox`, headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'W', 'mex-Subject': 's'.repeat(600) }, body: 'x' });
    t.is(malformed.status, 400);
    const logged = await loggedFor(malformed);
    t.is(logged?.error, malformed.json().detail[0].code);
    t.is(logged?.reason, undefined);
    t.false('error' in ((await loggedFor(await mailboxRequest(own, lab, { path: inbox }))) ?? { error: 'not logged' }), 'an answered request has none');
  } finally {
    await own.close();
  }
});

test("requests Node's parser refuses (431: headers over 32 KiB; 400: a bad Content-Length) and a CONNECT (405), answered without the app, are counted and logged as the app's are", async (t) => {
  const { logger, lines } = capturedLogger();
  const own = await startTestServer({ logger, worker: false });
  try {
    const lab = await own.createMailbox();
    const scrape = async (): Promise<string> => (await rawRequest(own, { path: '/metrics', clientCertificate: lab })).body.toString();
    const counted = (text: string, status: number): number => Number(new RegExp(`^meshbox_http_requests_total\\{route="unmatched",method="unread",status="${status}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    const exchanges = [
      [431, `GET /messageexchange/_ping HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(40_000)}\r\n\r\n`],
      [400, 'POST /messageexchange/_ping HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n'],
      [405, 'CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n'],
    ] as const;
    for (const [status, request] of exchanges) t.is((await rawTlsExchange(own, lab, Buffer.from(request))).status, status);
    let text = '';
    for (let attempt = 0; attempt < 50; attempt++) {
      text = await scrape();
      if (exchanges.every(([status]) => counted(text, status) === 1)) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const [status] of exchanges) {
      t.is(counted(text, status), 1, `${status} counted`);
      t.like(lines.find((line) => line.msg === 'request' && line.status === status), { error: String(status), certificate: { commonName: lab.id } });
    }
  } finally {
    await own.close();
  }
});

test('a request refused by authentication is counted under the route it asked for, not the router middleware that refused it', async (t) => {
  const scrape = async (): Promise<string> => (await rawRequest(server, { path: '/metrics', clientCertificate: lab })).body.toString();
  const refusedCount = /^meshbox_http_requests_total\{route="\/messageexchange\/:mailbox\/count",method="GET",status="403"\} (\S+)$/m;
  const before = Number(refusedCount.exec(await scrape())?.[1] ?? 0);
  t.is((await mailboxRequest(server, { ...gp, password: 'wrong' }, { path: `/messageexchange/${gp.id}/count` })).status, 403);
  let counted = 0;
  for (let attempt = 0; attempt < 50 && counted === 0; attempt++) {
    counted = Number(refusedCount.exec(await scrape())?.[1] ?? 0) - before;
    if (counted === 0) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.is(counted, 1);
});

test("the body of a refused send, read after its answer to keep the connection, is counted in meshbox_bytes_received_total once the connection closes, with no request after it", async (t) => {
  const own = await startTestServer({ worker: false });
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: own.caPem });
  try {
    const [lab, gp] = [await own.createMailbox(), await own.createMailbox()];
    const received = async (): Promise<number> =>
      Number(/^meshbox_bytes_received_total (\S+)$/m.exec((await rawRequest(own, { path: '/metrics', clientCertificate: lab })).body.toString())?.[1] ?? 0);
    const before = await received();
    const body = Buffer.alloc(4 * 1024 * 1024, 'x');
    const connection = once(own.httpsServer, 'secureConnection') as Promise<[TLSSocket]>;
    const refused = await mailboxRequest(own, { ...lab, password: 'wrong' }, { method: 'POST', path: `/messageexchange/${lab.id}/outbox`, headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'W' }, body, agent });
    t.is(refused.status, 403);
    t.not(refused.headers.connection, 'close', 'the connection is kept, its body read after the answer');
    const [socket] = await connection;
    for (let attempt = 0; attempt < 200 && socket.bytesRead < body.length; attempt++) await new Promise((resolve) => setTimeout(resolve, 50));
    t.true(socket.bytesRead >= body.length, 'the server read the body');
    // The client goes: no request follows on the connection.
    agent.destroy();
    let counted = 0;
    for (let attempt = 0; attempt < 100 && counted < body.length; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      counted = (await received()) - before;
    }
    t.true(counted >= body.length, `${counted} bytes counted for a ${body.length}-byte body the server read`);
  } finally {
    agent.destroy();
    await own.close();
  }
});

test('request metrics count what moved once the answer has ended: a streamed upload without a length, and a download broken off as incomplete', async (t) => {
  const scrape = async (): Promise<string> => (await rawRequest(server, { path: '/metrics', clientCertificate: lab })).body.toString();
  const value = (text: string, pattern: RegExp): number => Number(pattern.exec(text)?.[1] ?? 0);
  const received = /^meshbox_bytes_received_total (\S+)$/m;
  const incomplete = /^meshbox_http_requests_total\{route="\/messageexchange\/:mailbox\/inbox\/:messageId",method="GET",status="incomplete"\} (\S+)$/m;
  const before = await scrape();
  const body = gzipSync(randomBytes(8 * 1024 * 1024));
  const upload = await streamingRequest(server, lab, {
    method: 'POST',
    path: `/messageexchange/${lab.id}/outbox`,
    headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'METRICS', 'content-encoding': 'gzip', 'transfer-encoding': 'chunked' },
    body: Readable.from([body]),
  });
  t.is(upload.statusCode, 202);
  const messageId = (JSON.parse(await readText(upload)) as { message_id: string }).message_id;
  const afterUpload = await scrape();
  t.true(value(afterUpload, received) - value(before, received) >= body.length, 'the streamed body counted, though it had no Content-Length');

  const download = await streamingRequest(server, gp, { method: 'GET', path: `/messageexchange/${gp.id}/inbox/${messageId}`, headers: { 'accept-encoding': 'gzip' } });
  t.is(download.statusCode, 200);
  await once(download, 'data');
  download.destroy();
  let counted = 0;
  for (let attempt = 0; attempt < 50 && counted === 0; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    counted = value(await scrape(), incomplete) - value(afterUpload, incomplete);
  }
  t.is(counted, 1, 'not a 200: its answer never ended');
});
