import test from 'ava';
import { buildAuthorizationHeader } from '../../shared/src/protocol/index.ts';
import { startTestServer, type TestServer } from '../support/harness.ts';
import { mailboxRequest, openMailboxRequest } from '../support/http.ts';
import { rawTlsExchange } from '../support/raw-tls.ts';
import { startServerProcess } from '../support/server-process.ts';

let server: TestServer;

test.before(async () => {
  server = await startTestServer({ maxRequestsPerSecond: 5 });
});

test.after.always(async () => {
  await server?.close();
});

test('a mailbox over its requests per second gets 429 with Retry-After, other mailboxes are unaffected, and the same token works on retry', async (t) => {
  const busy = await server.createMailbox();
  const quiet = await server.createMailbox();
  const tokens = Array.from({ length: 12 }, () =>
    buildAuthorizationHeader({ mailboxId: busy.id, password: busy.password, sharedKey: server.sharedKey }),
  );
  const responses = await Promise.all(
    tokens.map((authorization) => mailboxRequest(server, busy, { path: `/messageexchange/${busy.id}/count`, authorization })),
  );
  const limited = responses.filter((response) => response.status === 429);
  t.true(limited.length >= 1, `statuses ${responses.map((response) => response.status).join(',')}`);
  t.true(responses.filter((response) => response.status === 200).length <= 5 * 2, 'at most two windows worth got through');
  t.is(limited[0]!.headers['retry-after'], '1');
  t.is(limited[0]!.json().detail[0].code, '429');

  t.is((await mailboxRequest(server, quiet, { path: `/messageexchange/${quiet.id}/count` })).status, 200);

  const retried = tokens[responses.indexOf(limited[0]!)]!;
  let status = 429;
  for (let attempt = 0; attempt < 20 && status === 429; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    status = (await mailboxRequest(server, busy, { path: `/messageexchange/${busy.id}/count`, authorization: retried })).status;
  }
  t.is(status, 200, 'the token of a rate-limited request was not used up');

  // The counters are per second: each must go soon after its window, or they would pile up.
  const counters = await server.redis.keys(`${server.redisPrefix}request-count:{${busy.id}}:*`);
  t.true(counters.length >= 1);
  for (const counter of counters) {
    const ttl = await server.redis.ttl(counter);
    // -2: gone meanwhile, as it should; 0: going within the second; -1 would be a counter kept for ever.
    t.true(ttl === -2 || (ttl >= 0 && ttl <= 2), `${counter} lives ${ttl} s more`);
  }
});

test('a client too slow to send its headers is answered 408 and disconnected', async (t) => {
  const slow = await startServerProcess({ MESHBOX_HEADERS_TIMEOUT_SECONDS: '1' });
  try {
    const mailbox = await slow.createMailbox();
    // Half a request line, then nothing: the slowloris pattern.
    const { status, text } = await rawTlsExchange(slow, mailbox, Buffer.from('GET /messageexchange/_ping HTTP/1.1\r\nHost: x\r\n'), 20_000);
    t.is(status, 408);
    t.regex(text, /"errorCode":"408"/);
  } finally {
    await slow.stop();
  }
});

test('uploads cut off by their clients fill no error log: a client going away is no server fault', async (t) => {
  const logged = await startServerProcess({ MESHBOX_LOG_LEVEL: 'warn' });
  try {
    const [lab, gp] = [await logged.createMailbox(), await logged.createMailbox()];
    for (let cut = 0; cut < 5; cut++) {
      const upload = openMailboxRequest(logged, lab, {
        method: 'POST',
        path: `/messageexchange/${lab.id}/outbox`,
        headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'CUT', 'content-length': '500000' },
      });
      const closed = new Promise((resolve) => upload.on('close', resolve));
      upload.on('error', () => undefined);
      upload.write(Buffer.alloc(100_000));
      await new Promise((resolve) => setTimeout(resolve, 100));
      upload.destroy();
      await closed;
    }
    // Still serving, and what it logged at warn and above: nothing.
    t.is((await mailboxRequest(logged, lab, { path: `/messageexchange/${lab.id}/inbox` })).status, 200);
    t.is(logged.output(), '');
  } finally {
    await logged.stop();
  }
});
