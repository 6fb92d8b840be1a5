import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import test from 'ava';
import { startTestServer, type TestMailbox, type TestServer } from '../support/harness.ts';
import { buildAuthorizationHeader } from '../../shared/src/protocol/index.ts';
import { mailboxRequest, sendMessage } from '../support/http.ts';
import { rawTlsExchange, sendWholeThenRead } from '../support/raw-tls.ts';

let server: TestServer;
let lab: TestMailbox;
let gp: TestMailbox;
let other: TestMailbox;

test.before(async () => {
  server = await startTestServer();
  lab = await server.createMailbox();
  gp = await server.createMailbox();
  other = await server.createMailbox();
});

test.after.always(async () => {
  await server?.close();
});

function send(headers: Record<string, string>, accept: 'v1' | 'v2' = 'v2', body = 'payload') {
  return mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox`, headers, body, accept });
}

test('an unknown recipient is refused with 417 and code 12, in v2 and v1 shapes', async (t) => {
  const v2 = await send({ 'mex-To': 'NOBODY001', 'mex-WorkflowID': 'W1' });
  t.is(v2.status, 417);
  t.like(v2.json().detail[0], { event: 'SEND', code: '12' });
  t.truthy(v2.json().internal_id);

  const v1 = await send({ 'mex-To': 'NOBODY001', 'mex-WorkflowID': 'W1' }, 'v1');
  t.is(v1.status, 417);
  t.like(v1.json(), { errorEvent: 'SEND', errorCode: '12' });
});

test('a send refused before its body is read is answered to a client that writes its whole body first (as mesh-client does), on a connection that carries its next request', async (t) => {
  // Far more than the connection's buffers hold: the server must read it for the client to finish writing.
  const body = Buffer.alloc(24 * 1024 * 1024, 'b');
  const request = (path: string, headers: Record<string, string>, payload = Buffer.alloc(0)) => {
    const authorization = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
    const lines = [`${payload.length > 0 ? 'POST' : 'GET'} ${path} HTTP/1.1`, 'Host: localhost', `Authorization: ${authorization}`, 'Accept: application/vnd.mesh.v2+json'];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\nContent-Length: ${payload.length}\r\n\r\n`), payload]);
  };
  const { answers, writeError } = await sendWholeThenRead(server, lab, [
    request(`/messageexchange/${lab.id}/outbox`, { 'mex-To': 'NOBODY001', 'mex-WorkflowID': 'W1' }, body),
    request(`/messageexchange/${lab.id}/inbox`, {}),
  ]);
  t.is(writeError, undefined, 'the whole body was taken');
  t.regex(answers[0] ?? '', /^HTTP\/1\.1 417 /);
  t.like(JSON.parse(answers[0]!.slice(answers[0]!.indexOf('\r\n\r\n') + 4)).detail[0], { event: 'SEND', code: '12' });
  t.regex(answers[1] ?? '', /^HTTP\/1\.1 200 /, 'the next request on the same connection is served');
});

test('a recipient is compared upper-cased as an id of ASCII letters and digits: one whose Unicode upper case is another id (ß is SS) is unknown, not delivered to that mailbox', async (t) => {
  const id = `SS${randomBytes(4).toString('hex').toUpperCase()}`;
  const lookAlike = await server.createMailbox({ id });
  const token = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
  // Header bytes as HTTP carries them, Latin-1: ß is the one byte 0xDF.
  const request = `POST /messageexchange/${lab.id}/outbox HTTP/1.1\r\nHost: x\r\nAuthorization: ${token}\r\nAccept: application/vnd.mesh.v2+json\r\nmex-To: \u00df${id.slice(2)}\r\nmex-WorkflowID: W1\r\nContent-Length: 7\r\nConnection: close\r\n\r\npayload`;
  const { status, text } = await rawTlsExchange(server, lab, Buffer.from(request, 'latin1'));
  t.is(status, 417);
  t.is(JSON.parse(text.slice(text.indexOf('{'))).detail[0].code, '12');
  t.is((await mailboxRequest(server, lookAlike, { path: `/messageexchange/${id}/count` })).json().count, 0);
  t.is((await send({ 'mex-To': id.toLowerCase(), 'mex-WorkflowID': 'W1' })).status, 202, 'a lower-case id is the mailbox');
});

test('an inactive recipient is refused like an unknown one', async (t) => {
  const retired = await server.createMailbox();
  await server.services.mailboxes.setActive(retired.id, false);
  const response = await send({ 'mex-To': retired.id, 'mex-WorkflowID': 'W1' });
  t.is(response.status, 417);
  t.is(response.json().detail[0].code, '12');
});

test('a send without mex-To is refused with code 08, without workflow with code 06, without a body with code 02', async (t) => {
  const noTo = await send({ 'mex-WorkflowID': 'W1' });
  t.is(noTo.status, 400);
  t.is(noTo.json().detail[0].code, '08');
  const noWorkflow = await send({ 'mex-To': gp.id });
  t.is(noWorkflow.status, 400);
  t.is(noWorkflow.json().detail[0].code, '06');
  const noBody = await send({ 'mex-To': gp.id, 'mex-WorkflowID': 'W1' }, 'v2', '');
  t.is(noBody.status, 417);
  t.like(noBody.json().detail[0], { event: 'COLLECT', code: '02' });
  const emptyStream = await send({ 'mex-To': gp.id, 'mex-WorkflowID': 'W1', 'transfer-encoding': 'chunked' }, 'v2', '');
  t.is(emptyStream.status, 417, 'an empty chunked body is found out once it ends');
  t.is(emptyStream.json().detail[0].code, '02');
  t.is(emptyStream.json().message_id, null, 'no message was recorded to name');
  const zeroSpeltLong = await send({ 'mex-To': gp.id, 'mex-WorkflowID': 'W1', 'content-length': '00' }, 'v2', '');
  t.is(zeroSpeltLong.status, 417, 'Content-Length: 00 is empty too');
});

test('URL-like addresses and overlong fields are a malformed control file (400, TRANSFER 06) naming the fields', async (t) => {
  const response = await send({ 'mex-To': 'https://evil.example', 'mex-WorkflowID': 'http://x', 'mex-Subject': 'fine # subject' });
  t.is(response.status, 400);
  const [detail] = response.json().detail;
  t.like(detail, { event: 'TRANSFER', code: '06' });
  t.regex(detail.msg, /mex-to/);
  t.regex(detail.msg, /mex-workflowid/);
  t.notRegex(detail.msg, /mex-subject/);

  const long = await send({ 'mex-To': gp.id, 'mex-WorkflowID': 'W1', 'mex-LocalID': 'x'.repeat(301) });
  t.is(long.status, 400);
  t.regex(long.json().detail[0].msg, /mex-localid/);
});

test('control characters in any mex-* header are a malformed control file naming the fields', async (t) => {
  const token = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
  const request = Buffer.from(
    `POST /messageexchange/${lab.id}/outbox HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${token}\r\n` +
      `Accept: application/vnd.mesh.v2+json\r\nmex-To: ${gp.id}\r\nmex-WorkflowID: W1\r\nmex-Subject: tab\there\r\n` +
      'mex-LocalID: tab\there\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx',
    'latin1',
  );
  const { status, text } = await rawTlsExchange(server, lab, request);
  t.is(status, 400);
  const body = JSON.parse(text.slice(text.indexOf('{')));
  t.like(body.detail[0], { event: 'TRANSFER', code: '06' });
  t.regex(body.detail[0].msg, /mex-subject/);
  t.regex(body.detail[0].msg, /mex-localid/);

  // Other control characters do not even get past Node's HTTP parser: still a 400 with a JSON body.
  const bell = await rawTlsExchange(server, lab, Buffer.from(request.toString('latin1').replace('tab\there', 'bell\x07here'), 'latin1'));
  t.is(bell.status, 400);
  t.is(JSON.parse(bell.text.slice(bell.text.indexOf('{'))).errorCode, '400');
});

test('an HTTP/1.1 request without a Host header is a MESH 400 (Node would answer it with an empty body); HTTP/1.0 needs none', async (t) => {
  const token = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
  const get = (version: string, path: string) =>
    rawTlsExchange(server, lab, Buffer.from(`GET ${path} HTTP/${version}\r\nAuthorization: ${token}\r\nAccept: application/vnd.mesh.v2+json\r\nConnection: close\r\n\r\n`));
  for (const path of ['/messageexchange/_ping', `/messageexchange/${lab.id}/inbox`]) {
    const { status, text } = await get('1.1', path);
    t.is(status, 400, path);
    t.like(JSON.parse(text.slice(text.indexOf('{'))).detail[0], { code: '400', msg: 'Invalid request: an HTTP/1.1 request needs a Host header' });
  }
  t.is((await get('1.0', `/messageexchange/${lab.id}/inbox`)).status, 200);
});

test('a request target that is no URL (an absolute form with a broken host) is a MESH 400, before any route, and the server carries on', async (t) => {
  for (const target of ['http://[::1/x', 'https://[::1]:x/messageexchange/_ping']) {
    const { status, text } = await rawTlsExchange(server, lab, Buffer.from(`GET ${target} HTTP/1.1\r\nHost: x\r\nAccept: application/vnd.mesh.v2+json\r\nConnection: close\r\n\r\n`));
    t.is(status, 400, target);
    t.like(JSON.parse(text.slice(text.indexOf('{'))).detail[0], { code: '400', msg: 'Invalid request: the request target is not a URL' }, target);
  }
  t.is((await mailboxRequest(server, lab, { path: '/messageexchange/_ping' })).status, 200);
});

test('an Expect other than 100-continue is a MESH 417 in the version asked for (Node would answer a bare one); 100-continue is met', async (t) => {
  const token = () => buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
  // The server closes the connection after its answer; till then, a pause (between the 100 and
  // the answer, on a loaded host) is no end.
  const get = (path: string, expect: string, accept = 'application/vnd.mesh.v2+json') =>
    rawTlsExchange(server, lab, Buffer.from(`GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${token()}\r\nAccept: ${accept}\r\nExpect: ${expect}\r\nConnection: close\r\n\r\n`), 10_000, 10_000);
  for (const path of ['/messageexchange/_ping', `/messageexchange/${lab.id}/count`]) {
    const { status, text } = await get(path, 'something-else');
    t.is(status, 417, path);
    t.like(JSON.parse(text.slice(text.indexOf('{'))).detail[0], { code: '417', msg: 'Expectation not supported: only 100-continue' });
  }
  const v1 = await get(`/messageexchange/${lab.id}/count`, 'fast', 'application/json');
  t.like(JSON.parse(v1.text.slice(v1.text.indexOf('{'))), { errorCode: '417', errorEvent: 'TRANSFER' });
  t.regex((await get(`/messageexchange/${lab.id}/count`, '100-Continue')).text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
});

test('a plain Content-Type stands in for mex-Content-Type within its limit, and a v2 download gives it back as sent', async (t) => {
  const sendTyped = (contentType: string) =>
    mailboxRequest(server, lab, {
      method: 'POST',
      path: `/messageexchange/${lab.id}/outbox`,
      headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'W1', 'content-type': contentType },
      body: 'typed',
    });
  // Echoed back twice on download (mex-Content-Type and Content-Type), it would make the recipient's header block too big to read.
  const oversize = await sendTyped(`text/plain; x=${'y'.repeat(20_000)}`);
  t.is(oversize.status, 400);
  t.like(oversize.json().detail[0], { code: '06' });
  t.regex(oversize.json().detail[0].msg, /content-type/);

  for (const contentType of ['text/plain', 'csv', 'application/x-hl7; version=2.4']) {
    const sent = await sendTyped(contentType);
    t.is(sent.status, 202);
    const path = `/messageexchange/${gp.id}/inbox/${sent.json().message_id}`;
    t.is((await mailboxRequest(server, gp, { path })).headers['content-type'], contentType, 'no charset or type added');
    t.is((await mailboxRequest(server, gp, { method: 'HEAD', path })).headers['content-type'], contentType);
    t.is((await mailboxRequest(server, gp, { path, accept: 'v1' })).headers['content-type'], 'application/octet-stream');
  }
});

test('a body in a transfer coding other than chunked (gzip, chunked) is refused with 501, not stored still coded as if it were the payload', async (t) => {
  const token = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
  const coded = gzipSync(Buffer.from('the payload itself'));
  const request = Buffer.concat([
    Buffer.from(
      `POST /messageexchange/${lab.id}/outbox HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${token}\r\nAccept: application/vnd.mesh.v2+json\r\n` +
        `mex-To: ${gp.id}\r\nmex-WorkflowID: TE_GZIP\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n${coded.length.toString(16)}\r\n`,
    ),
    coded,
    Buffer.from('\r\n0\r\n\r\n'),
  ]);
  const { status, text } = await rawTlsExchange(server, lab, request);
  t.is(status, 501);
  t.like(JSON.parse(text.slice(text.indexOf('{'))).detail[0], { code: '501' });
  const listed = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox?workflow_filter=TE_GZIP` });
  t.deepEqual(listed.json().messages, []);
});

test('a checksum with characters MESH does not allow is refused; sha256:<hex> is fine', async (t) => {
  const bad = await send({ 'mex-To': gp.id, 'mex-WorkflowID': 'W1', 'mex-Content-Checksum': 'sha256:abc+def=' });
  t.is(bad.status, 400);
  t.is(bad.json().detail[0].code, 'Invalid checksum');
  const good = await send({ 'mex-To': gp.id, 'mex-WorkflowID': 'W1', 'mex-Content-Checksum': 'sha256:0123abcdef' });
  t.is(good.status, 202);
});

test('spaces and # in ids are accepted', async (t) => {
  const response = await send({ 'mex-To': gp.id, 'mex-WorkflowID': 'WORK FLOW#1', 'mex-LocalID': 'a b#c' });
  t.is(response.status, 202);
});

test('an invalid chunk range is refused with 417 InvalidHeaderChunks', async (t) => {
  for (const range of ['0:1', '2:1', 'x', '2:3']) {
    const response = await send({ 'mex-To': gp.id, 'mex-WorkflowID': 'W1', 'mex-Chunk-Range': range });
    t.is(response.status, 417, range);
    t.is(response.json().detail[0].code, 'InvalidHeaderChunks');
  }
});

test('an unsupported Content-Encoding is refused', async (t) => {
  const response = await send({ 'mex-To': gp.id, 'mex-WorkflowID': 'W1', 'content-encoding': 'br' });
  t.is(response.status, 422);
  t.is(response.json().detail[0].code, 'UnsupportedContentEncoding');
});

test('a malformed vnd.mesh Accept header is a 400', async (t) => {
  const response = await mailboxRequest(server, gp, {
    path: `/messageexchange/${gp.id}/inbox`,
    headers: { accept: 'application/vnd.mesh.v9+json' },
  });
  t.is(response.status, 400);
  t.is(response.json().errorCode, '400');
});

test('an unknown message is 404 with code 20 for download, HEAD, acknowledge and tracking', async (t) => {
  const unknown = '20260101000000000000_ABCDEF';
  const download = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${unknown}` });
  t.is(download.status, 404);
  t.is(download.json().detail[0].code, '20');
  const head = await mailboxRequest(server, gp, { method: 'HEAD', path: `/messageexchange/${gp.id}/inbox/${unknown}` });
  t.is(head.status, 404);
  const ack = await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${unknown}/status/acknowledged` });
  t.is(ack.status, 404);
  const track = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${unknown}` });
  t.is(track.status, 404);
});

test("someone else's message looks exactly like one that does not exist", async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'for the GP only');
  const unknown = '20260101000000000000_ABCDEF';
  const paths = (id: string) => ({
    download: { path: `/messageexchange/${other.id}/inbox/${id}` },
    ack: { method: 'PUT', path: `/messageexchange/${other.id}/inbox/${id}/status/acknowledged` },
    track: { path: `/messageexchange/${other.id}/outbox/tracking?messageID=${id}` },
  });
  for (const [name, theirs] of Object.entries(paths(messageId))) {
    const mine = paths(unknown)[name as keyof ReturnType<typeof paths>];
    const a = await mailboxRequest(server, other, theirs);
    const b = await mailboxRequest(server, other, mine);
    t.is(a.status, 404, name);
    t.is(a.status, b.status, name);
    t.deepEqual(a.json().detail.map((d: { code: string }) => d.code), b.json().detail.map((d: { code: string }) => d.code));
  }
  // The recipient still has it, unacknowledged.
  const download = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` });
  t.is(download.status, 200);
  t.is(download.body.toString(), 'for the GP only');
});

test('the recipient cannot track, and the sender cannot download, a message', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'x');
  t.is((await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/outbox/tracking?messageID=${messageId}` })).status, 404);
  t.is((await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/inbox/${messageId}` })).status, 404);
});

test('acknowledging twice is harmless; the message stays out of the inbox', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'twice');
  const path = `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged`;
  t.is((await mailboxRequest(server, gp, { method: 'PUT', path })).status, 200);
  t.is((await mailboxRequest(server, gp, { method: 'PUT', path })).status, 200);
  t.false((await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox` })).json().messages.includes(messageId));
});

test('unknown routes and methods answer MESH error bodies, not bare text', async (t) => {
  const route = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/nowhere` });
  t.is(route.status, 404);
  t.truthy(route.json().detail);
  const method = await mailboxRequest(server, gp, { method: 'DELETE', path: `/messageexchange/${gp.id}/inbox` });
  t.is(method.status, 405);
  t.truthy(method.json().detail);
  // Methods no route knows, OPTIONS, and anything but GET/POST on the mailbox itself (the
  // handshake): each 405 says which methods the path does take, as HTTP asks of one.
  for (const [verb, path, allowed] of [
    ['PROPFIND', `/messageexchange/${gp.id}/inbox`, 'HEAD, GET'],
    ['OPTIONS', `/messageexchange/${gp.id}/inbox`, 'HEAD, GET'],
    ['PUT', `/messageexchange/${gp.id}`, 'HEAD, GET, POST'],
    ['DELETE', `/messageexchange/${gp.id}`, 'HEAD, GET, POST'],
  ] as const) {
    const answer = await mailboxRequest(server, gp, { method: verb, path });
    t.is(answer.status, 405, `${verb} ${path}`);
    t.like(answer.json().detail[0], { code: '405' }, `${verb} ${path}`);
    t.is(answer.headers.allow, allowed, `${verb} ${path}`);
  }
  // HEAD is GET without its body, on the handshake as on every other route.
  t.is((await mailboxRequest(server, gp, { method: 'HEAD', path: `/messageexchange/${gp.id}` })).status, 200);
  // The public endpoints too: other methods must not reach the mailbox routes, which would take
  // `_ping` for a mailbox id and refuse the certificate (403).
  for (const [verb, path] of [
    ['TRACE', '/messageexchange/_ping'],
    ['POST', '/messageexchange/_ping'],
    ['DELETE', '/messageexchange/workflowsearch/SOME_WORKFLOW'],
    ['PUT', '/messageexchange/endpointlookup/X26/SOME_WORKFLOW'],
  ] as const) {
    const answer = await mailboxRequest(server, gp, { method: verb, path });
    t.is(answer.status, 405, `${verb} ${path}`);
    t.like(answer.json().detail[0], { code: '405' }, `${verb} ${path}`);
    t.is(answer.headers.allow, 'GET, HEAD', `${verb} ${path}`);
  }
  t.is((await mailboxRequest(server, gp, { method: 'HEAD', path: '/messageexchange/_ping' })).status, 200);
  // OPTIONS is no MESH method on any path: asked of the server itself (`*`) or of a path no route knows.
  for (const path of ['*', `/messageexchange/${gp.id}/nowhere`]) {
    const answer = await mailboxRequest(server, gp, { method: 'OPTIONS', path });
    t.is(answer.status, 405, `OPTIONS ${path}`);
    t.like(answer.json().detail[0], { code: '405' }, `OPTIONS ${path}`);
  }
  // CONNECT never reaches the app: answered on the socket, in MESH's v1 shape.
  const { status, text } = await rawTlsExchange(server, gp, Buffer.from('CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n'));
  t.is(status, 405);
  t.regex(text, /"errorCode":"405"/);
});

test('a refused send leaves nothing behind: no reserved id, no lifecycle entry', async (t) => {
  const own = await startTestServer({ worker: false });
  try {
    const [sender, recipient] = [await own.createMailbox(), await own.createMailbox({ workflows: ['ONLY_THIS'] })];
    const send = (to: string, workflow: string) =>
      mailboxRequest(own, sender, {
        method: 'POST',
        path: `/messageexchange/${sender.id}/outbox`,
        headers: { 'mex-To': to, 'mex-WorkflowID': workflow },
        body: 'refused',
      });
    t.is((await send('NOSUCHBOX1', 'ONLY_THIS')).status, 417);
    t.is((await send(recipient.id, 'ANOTHER')).status, 417);
    const reservations = async () => (await own.redis.keys(`${own.redisPrefix}message-id-reservation:*`)).length;
    t.is(await reservations(), 0);
    t.is((await own.connections.schedule.counts(new Date())).scheduled, 0);

    t.is((await send(recipient.id, 'ONLY_THIS')).status, 202);
    t.is((await own.connections.schedule.counts(new Date())).scheduled, 1, 'an accepted send is scheduled');
  } finally {
    await own.close();
  }
});
