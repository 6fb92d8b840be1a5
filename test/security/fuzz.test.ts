import test from 'ava';
import fc from 'fast-check';
import { buildAuthorizationHeader } from '../../shared/src/protocol/index.ts';
import { startTestServer, type TestMailbox, type TestServer } from '../support/harness.ts';
import { mailboxRequest, sendMessage } from '../support/http.ts';
import { rawTlsExchange } from '../support/raw-tls.ts';

let server: TestServer;
let lab: TestMailbox;
let gp: TestMailbox;
let witness: string;
const WITNESS_BODY = 'this message must survive the fuzzing unchanged';

test.before(async () => {
  server = await startTestServer({ maxRequestsPerSecond: 0 });
  lab = await server.createMailbox();
  gp = await server.createMailbox();
  witness = await sendMessage(server, lab, gp, WITNESS_BODY);
});

test.after.always(async () => {
  await server?.close();
});

/** Only outages may be 5xx, and this test has none. */
const acceptable = (status: number): boolean => status >= 200 && status < 500;

// Header-safe text (what an HTTP client will send) and hostile extras.
const headerText = fc.oneof(
  fc.string({ unit: fc.constantFrom(...'abcXYZ019 _-#:/.*!?%&=+@~'.split('')), maxLength: 40 }),
  fc.constantFrom('', ' ', 'http://x', 'https://evil/', '0:0', '1:0', '-1:2', '99999999999:1', 'Y', 'N', '\u00e9\u00e8', 'a'.repeat(2000)),
);

test.serial('random mex-* headers, chunk ranges and bodies on send never cause a 5xx', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        to: fc.oneof(fc.constant(gp.id), headerText),
        workflow: headerText,
        range: fc.oneof(fc.constant('1:1'), headerText),
        subject: headerText,
        localId: headerText,
        checksum: headerText,
        encoding: fc.constantFrom('', 'gzip', 'br', 'identity', 'GZIP'),
        body: fc.uint8Array({ maxLength: 512 }),
      }),
      async (input) => {
        const headers: Record<string, string> = {
          'mex-To': input.to,
          'mex-WorkflowID': input.workflow,
          'mex-Chunk-Range': input.range,
          'mex-Subject': input.subject,
          'mex-LocalID': input.localId,
          'mex-Content-Checksum': input.checksum,
        };
        if (input.encoding) headers['content-encoding'] = input.encoding;
        const response = await mailboxRequest(server, lab, {
          method: 'POST',
          path: `/messageexchange/${lab.id}/outbox`,
          headers,
          body: Buffer.from(input.body),
        });
        if (!acceptable(response.status)) t.log(response.status, response.body.toString(), headers);
        return acceptable(response.status) && (response.status === 202 || response.json() !== undefined);
      },
    ),
    { numRuns: 150 },
  );
  t.pass();
});

test.serial('random paths, methods and query strings never cause a 5xx', async (t) => {
  const segment = fc.oneof(
    fc.constantFrom('inbox', 'outbox', 'count', 'tracking', 'status', 'acknowledged', '..', '.', '%00', '%2e%2e', '', witness, witness.toLowerCase()),
    fc.string({ unit: fc.constantFrom(...'abc019_-.~%'.split('')), maxLength: 30 }),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'PATCH', 'OPTIONS'),
      fc.array(segment, { maxLength: 5 }),
      fc.string({ unit: fc.constantFrom(...'abc=&?%019_'.split('')), maxLength: 30 }),
      async (method, segments, query) => {
        const path = `/messageexchange/${gp.id}/${segments.map((s) => s).join('/')}${query ? `?${query}` : ''}`;
        const response = await mailboxRequest(server, gp, { method, path, body: method === 'POST' || method === 'PUT' ? 'x' : undefined });
        if (!acceptable(response.status)) t.log(method, path, response.status, response.body.toString());
        return acceptable(response.status);
      },
    ),
    { numRuns: 150 },
  );
  t.pass();
});

test.serial('random Authorization headers are refused with 403 (429 once its certificate is past its failed logins), never a 5xx', async (t) => {
  // A mailbox of its own: its certificate is refused for the rest of the minute once past 10 failed logins.
  const fuzzed = await server.createMailbox();
  const valid = buildAuthorizationHeader({ mailboxId: fuzzed.id, password: fuzzed.password, sharedKey: server.sharedKey });
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        headerText,
        fc.array(headerText, { minLength: 5, maxLength: 5 }).map((fields) => `NHSMESH ${fields.join(':')}`),
        fc.nat({ max: valid.length - 1 }).chain((at) => fc.constantFrom(...'x:0Z '.split('')).map((c) => valid.slice(0, at) + c + valid.slice(at + 1))),
      ),
      async (authorization) => {
        const response = await mailboxRequest(server, fuzzed, { path: `/messageexchange/${fuzzed.id}/count`, authorization });
        return response.status === 403 || response.status === 429 || (authorization === valid && response.status === 200);
      },
    ),
    { numRuns: 150 },
  );
  t.pass();
});

test.serial('raw, malformed HTTP gets a 4xx with a JSON body (a request not yet whole may be waited on for the rest), never silence, and the server keeps serving', async (t) => {
  const token = () => buildAuthorizationHeader({ mailboxId: gp.id, password: gp.password, sharedKey: server.sharedKey });
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        // Bytes that may be the start of a request still to come: the server may wait for the rest (no answer yet).
        fc.uint8Array({ maxLength: 300 }).map((bytes) => ({ request: Buffer.from(bytes), whole: false })),
        // Whole requests (or refused from their first line or headers): an answer is due, never silence.
        fc.string({ maxLength: 60 }).map((value) => ({
          request: Buffer.from(
            `POST /messageexchange/${gp.id}/outbox HTTP/1.1\r\nHost: x\r\nAuthorization: ${token()}\r\nmex-To: ${value}\r\nmex-WorkflowID: W\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx`,
            'latin1',
          ),
          whole: true,
        })),
        fc.string({ maxLength: 60 }).map((value) => ({ request: Buffer.from(`GET /messageexchange/${value} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 'latin1'), whole: true })),
        fc.constantFrom(
          Buffer.from(`GET / HTTP/1.1\r\nHost: x\r\n${'X-Big: '.padEnd(40_000, 'a')}\r\n\r\n`),
          Buffer.from('POST /messageexchange/X/outbox HTTP/1.1\r\nContent-Length: -5\r\n\r\n'),
          Buffer.from('POST /messageexchange/X/outbox HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'),
        ).map((request) => ({ request, whole: true })),
      ),
      async ({ request, whole }) => {
        // Longer for a whole request: a loaded machine may take more than a second to answer one.
        const { status, text } = await rawTlsExchange(server, gp, request, whole ? 10_000 : 1_000);
        if (status >= 500 || (whole && status === 0)) t.log(status, JSON.stringify(request.subarray(0, 200).toString('latin1')), text.slice(0, 300));
        return (status === 0 && !whole) || (status > 0 && status < 500 && (status === 202 || text.includes('{')));
      },
    ),
    { numRuns: 100 },
  );
  t.pass();
});

test.serial('garbage right behind a send on its connection does not replace the send\'s answer: the sender is told 202 for what went, then 400', async (t) => {
  const token = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
  const send = `POST /messageexchange/${lab.id}/outbox HTTP/1.1\r\nHost: x\r\nAuthorization: ${token}\r\nAccept: application/vnd.mesh.v2+json\r\nmex-To: ${gp.id}\r\nmex-WorkflowID: W\r\nContent-Length: 4\r\n\r\nsent`;
  const { status, text } = await rawTlsExchange(server, lab, Buffer.from(`${send}GARBAGE\r\n\r\n`, 'latin1'), 10_000, 5_000);
  t.is(status, 202, text);
  const messageId = /"message_id":"([^"]+)"/.exec(text)?.[1];
  t.truthy(messageId);
  t.regex(text.slice(text.indexOf('"message_id"')), /^[^]*HTTP\/1\.1 400 Bad Request[^]*"errorCode":"400"/, 'the garbage is answered second, on its own');
  t.is(text.match(/HTTP\/1\.1 /g)?.length, 2);
  const tracking = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` });
  t.is(tracking.json().status, 'accepted');
});

test.serial('a pipelined request whose chunked body is garbled, right behind a send, is answered 400 after the send\'s own 202, in order', async (t) => {
  const token = () => buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
  const body = Buffer.alloc(1024 * 1024, 's');
  const send = `POST /messageexchange/${lab.id}/outbox HTTP/1.1\r\nHost: x\r\nAuthorization: ${token()}\r\nAccept: application/vnd.mesh.v2+json\r\nmex-To: ${gp.id}\r\nmex-WorkflowID: W\r\nContent-Length: ${body.length}\r\n\r\n`;
  // Its headers parse, so the server has taken it for a request before its body fails to.
  const garbled = `POST /messageexchange/${lab.id}/outbox HTTP/1.1\r\nHost: x\r\nAuthorization: ${token()}\r\nmex-To: ${gp.id}\r\nmex-WorkflowID: W\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`;
  const warnings: string[] = [];
  const onWarning = (warning: Error) => warnings.push(warning.name);
  process.on('warning', onWarning);
  // More bytes after the garbled ones, many reads of them: each is one more parse error to Node.
  const more = Buffer.alloc(2 * 1024 * 1024, 'z');
  const { status, text } = await rawTlsExchange(server, lab, Buffer.concat([Buffer.from(send, 'latin1'), body, Buffer.from(garbled, 'latin1'), more]), 10_000, 5_000);
  process.off('warning', onWarning);
  t.deepEqual(warnings, [], 'the connection is answered once, not once per read');
  t.is(text.match(/HTTP\/1\.1 /g)?.length, 2);
  t.is(status, 202, text.slice(0, 300));
  const messageId = /"message_id":"([^"]+)"/.exec(text)?.[1];
  t.truthy(messageId);
  t.regex(text.slice(text.indexOf('"message_id"')), /HTTP\/1\.1 400 Bad Request[\s\S]*"errorCode":"400"/, 'the garbled request gets its own answer, second');
  const tracking = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` });
  t.is(tracking.json().status, 'accepted');
});

test.serial('a chunked upload whose encoding breaks off mid-body is answered 400 at once, and holds nothing', async (t) => {
  const token = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
  const upload = `POST /messageexchange/${lab.id}/outbox HTTP/1.1\r\nHost: x\r\nAuthorization: ${token}\r\nmex-To: ${gp.id}\r\nmex-WorkflowID: W\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\nnot-a-size\r\n`;
  const { status, text } = await rawTlsExchange(server, lab, Buffer.from(upload, 'latin1'));
  t.is(status, 400, text);
  t.regex(text, /"errorCode":"400"/);
});

test.serial('after all the fuzzing the witness message is intact and the inbox is consistent', async (t) => {
  const download = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${witness}` });
  t.is(download.status, 200);
  t.is(download.body.toString(), WITNESS_BODY);
  const listed = (await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox?max_results=5000` })).json();
  const count = (await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/count` })).json().count;
  t.is(listed.messages.length, count);
  t.true(listed.messages.includes(witness));
  for (const messageId of listed.messages.slice(0, 50)) {
    const head = await mailboxRequest(server, gp, { method: 'HEAD', path: `/messageexchange/${gp.id}/inbox/${messageId}` });
    t.is(head.status, 200, `listed message ${messageId} is downloadable`);
  }
});
