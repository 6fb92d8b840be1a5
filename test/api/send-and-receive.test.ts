import { randomBytes } from 'node:crypto';
import test from 'ava';
import { startTestServer, type TestMailbox, type TestServer } from '../support/harness.ts';
import { mailboxRequest, rawRequest, sendMessage } from '../support/http.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import { acknowledgeMessage } from '../../server/src/domain/acknowledge.ts';

let server: TestServer;
let lab: TestMailbox;
let gp: TestMailbox;

test.before(async () => {
  server = await startTestServer();
  lab = await server.createMailbox({ name: 'Pathology lab', odsCode: 'RX1' });
  gp = await server.createMailbox({ name: 'Riverside practice', odsCode: 'A81001' });
});

test.after.always(async () => {
  await server?.close();
});

test('_ping answers JSON without a mailbox token', async (t) => {
  const response = await rawRequest(server, { path: '/messageexchange/_ping', clientCertificate: lab });
  t.is(response.status, 200);
  t.is(response.json().status, 'ok');
});

test('handshake answers 200 with an empty body in v2 and the mailbox id in v1', async (t) => {
  const v2 = await mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}` });
  t.is(v2.status, 200);
  t.is(v2.body.length, 0);
  const v1 = await mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}`, accept: 'v1' });
  t.is(v1.status, 200);
  t.deepEqual(v1.json(), { mailboxId: lab.id });
  const get = await mailboxRequest(server, lab, { method: 'GET', path: `/messageexchange/${lab.id.toLowerCase()}` });
  t.is(get.status, 200);
});

test('a sent message round-trips byte-exact, with its metadata, and leaves the inbox after acknowledgement', async (t) => {
  const payload = randomBytes(300_000);
  const messageId = await sendMessage(server, lab, gp, payload, {
    'mex-Subject': 'FBC result',
    'mex-LocalID': `local-${randomBytes(4).toString('hex')}`,
    'mex-FileName': 'result.dat',
    'mex-Content-Checksum': 'md5:abc',
  });
  t.regex(messageId, /^\d{20}_[0-9A-F]{6}$/);

  const inbox = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox` });
  t.is(inbox.status, 200);
  t.true(inbox.json().messages.includes(messageId));

  const head = await mailboxRequest(server, gp, { method: 'HEAD', path: `/messageexchange/${gp.id}/inbox/${messageId}` });
  t.is(head.status, 200);
  t.is(head.headers['mex-messageid'], messageId);
  t.is(head.body.length, 0);

  const download = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId.toLowerCase()}` });
  t.is(download.status, 200);
  t.true(download.body.equals(payload));
  t.is(download.headers['mex-from'], lab.id);
  t.is(download.headers['mex-to'], gp.id);
  t.is(download.headers['mex-workflowid'], 'PATH_RESULTS');
  t.is(download.headers['mex-subject'], 'FBC result');
  t.is(download.headers['mex-filename'], 'result.dat');
  t.is(download.headers['mex-content-checksum'], 'md5:abc');
  t.is(download.headers['mex-chunk-range'], '1:1');
  t.is(download.headers['mex-total-chunks'], '1');
  t.is(download.headers['mex-messagetype'], 'DATA');
  t.is(download.headers['content-length'], String(payload.length));

  const ack = await mailboxRequest(server, gp, {
    method: 'PUT',
    path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged`,
  });
  t.is(ack.status, 200);

  const after = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox` });
  t.false(after.json().messages.includes(messageId));
  // Downloadable still while its payload is kept, as MESH serves it: mesh-client reads chunks 2..N
  // only as its reader reaches them, which may be after it acknowledged.
  const again = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` });
  t.is(again.status, 200);
  t.true(again.body.equals(payload));
  const againHead = await mailboxRequest(server, gp, { method: 'HEAD', path: `/messageexchange/${gp.id}/inbox/${messageId}` });
  t.is(againHead.status, 200);
  t.is(againHead.headers['mex-messageid'], messageId);

  const tracking = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` });
  t.is(tracking.status, 200);
  t.like(tracking.json(), {
    message_id: messageId,
    status: 'acknowledged',
    sender: lab.id,
    recipient: gp.id,
    filename: 'result.dat',
    file_size: payload.length,
    workflow_id: 'PATH_RESULTS',
    // The parties as registered, and when an unacknowledged message would have left the inbox.
    sender_name: 'Pathology lab',
    sender_ods_code: 'RX1',
    recipient_name: 'Riverside practice',
    recipient_ods_code: 'A81001',
  });
  const { accepted_timestamp, expiry_time } = tracking.json();
  t.is(Date.parse(expiry_time) - Date.parse(accepted_timestamp), server.services.periods.inboxExpiryMs);
});

test('v1 shapes: send answers messageID, acknowledge answers messageId, tracking is camelCase with title-case status and the parties', async (t) => {
  const send = await mailboxRequest(server, lab, {
    method: 'POST',
    accept: 'v1',
    path: `/messageexchange/${lab.id}/outbox`,
    headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'PATH_RESULTS' },
    body: 'v1 body',
  });
  t.is(send.status, 202);
  const messageId: string = send.json().messageID;
  t.truthy(messageId);

  const tracked = await mailboxRequest(server, lab, {
    accept: 'v1',
    path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}`,
  });
  // No mex-FileName was sent: tracking gives MESH's default, as the download header does.
  t.like(tracked.json(), {
    messageId,
    dtsId: messageId,
    status: 'Accepted',
    statusSuccess: 'SUCCESS',
    fileName: `${messageId}.dat`,
    senderName: 'Pathology lab',
    recipientName: 'Riverside practice',
    meshRecipientOdsCode: 'A81001',
    contentEncoding: '',
    // As MESH's sandbox renders v1 tracking: the flags Y or '', the type title-cased, text fields
    // never sent as '' (a v1 client reads them as strings), not null.
    compressFlag: '',
    isCompressed: '',
    encryptedFlag: '',
    messageType: 'Data',
    localId: '',
    partnerId: '',
    subject: '',
    checksum: '',
    downloadTimestamp: '',
    failureDate: null,
    failureDiagnostic: null,
  });
  t.regex(tracked.json().expiryTime, /^\d{14}$/);

  const count = await mailboxRequest(server, gp, { accept: 'v1', path: `/messageexchange/${gp.id}/count` });
  t.is(count.status, 200);
  t.true(count.json().count >= 1);
  t.true(count.json().allResultsIncluded);

  const inbox = await mailboxRequest(server, gp, { accept: 'v1', path: `/messageexchange/${gp.id}/inbox` });
  t.deepEqual(Object.keys(inbox.json()), ['messages']);

  const ack = await mailboxRequest(server, gp, {
    method: 'PUT',
    accept: 'v1',
    path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged`,
  });
  t.deepEqual(ack.json(), { messageId });
});

test("v2 answers of meshbox's own are typed application/vnd.mesh.v2+json, as MESH types them (errors and lookups too); v1 ones application/json; a payload keeps its sender's type", async (t) => {
  const typeOf = (response: { headers: Record<string, string | string[] | undefined> }): string => String(response.headers['content-type']).split(';')[0]!;
  const messageId = await sendMessage(server, lab, gp, '{"a": 1}', { 'mex-WorkflowID': 'TYPED', 'content-type': 'application/json' });
  t.is(typeOf(await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox` })), 'application/vnd.mesh.v2+json');
  t.is(typeOf(await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/20260101000000000000_ABCDEF` })), 'application/vnd.mesh.v2+json', 'an error');
  t.is(typeOf(await mailboxRequest(server, gp, { path: '/messageexchange/workflowsearch/TYPED' })), 'application/vnd.mesh.v2+json');
  t.is(typeOf(await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` })), 'application/vnd.mesh.v2+json');
  t.is(typeOf(await mailboxRequest(server, gp, { accept: 'v1', path: `/messageexchange/${gp.id}/inbox` })), 'application/json');
  const payload = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` });
  t.is(typeOf(payload), 'application/json', "the sender's type");
  t.is(payload.body.toString(), '{"a": 1}');
});

test('inbox lists oldest first and pages with links.next as a root-relative path', async (t) => {
  const sender = await server.createMailbox();
  const recipient = await server.createMailbox();
  const sent: string[] = [];
  for (let i = 0; i < 12; i++) sent.push(await sendMessage(server, sender, recipient, `message ${i}`));

  const first = await mailboxRequest(server, recipient, { path: `/messageexchange/${recipient.id}/inbox?max_results=10` });
  t.is(first.status, 200);
  const firstPage = first.json();
  t.deepEqual(firstPage.messages, sent.slice(0, 10));
  t.is(firstPage.approx_inbox_count, 12);
  t.regex(firstPage.links.next, new RegExp(`^/messageexchange/${recipient.id}/inbox\\?`));

  const second = await mailboxRequest(server, recipient, { path: firstPage.links.next });
  t.deepEqual(second.json().messages, sent.slice(10));
  t.is(second.json().links.next, undefined);

  const count = await mailboxRequest(server, recipient, { path: `/messageexchange/${recipient.id}/count` });
  t.deepEqual(count.json(), { count: 12 });
});

test("v1's inbox pages as MESH's v1 does: max_results, and continue_from naming the last message id seen (from the start once that one has left the inbox)", async (t) => {
  const sender = await server.createMailbox();
  const recipient = await server.createMailbox();
  const sent: string[] = [];
  for (let i = 0; i < 15; i++) sent.push(await sendMessage(server, sender, recipient, `message ${i}`));
  const page = async (query: string) => {
    const response = await mailboxRequest(server, recipient, { accept: 'v1', path: `/messageexchange/${recipient.id}/inbox?${query}` });
    t.is(response.status, 200, response.body.toString());
    return response.json().messages as string[];
  };
  t.deepEqual(await page('max_results=10'), sent.slice(0, 10));
  t.deepEqual(await page(`max_results=10&continue_from=${sent[9]}`), sent.slice(10));
  t.deepEqual(await page(`continue_from=${sent[3]}`), sent.slice(4), 'the default page: 500');
  t.deepEqual(await page(`max_results=10&continue_from=${sent[9]?.toLowerCase()}`), sent.slice(10), 'an id in lower case is the same id');
  // A client acknowledging as it pages: the last id it saw has left the inbox.
  for (const id of sent.slice(0, 10)) {
    t.is((await mailboxRequest(server, recipient, { accept: 'v1', method: 'PUT', path: `/messageexchange/${recipient.id}/inbox/${id}/status/acknowledged` })).status, 200);
  }
  t.deepEqual(await page(`max_results=10&continue_from=${sent[9]}`), sent.slice(10));
  const refused = await mailboxRequest(server, recipient, { accept: 'v1', path: `/messageexchange/${recipient.id}/inbox?max_results=5` });
  t.is(refused.status, 400);
  t.is(refused.json().errorCode, '400');
});

test("v1's inbox with a workflow_filter reads on past the page for its matches: v1 has no link to the next page, so a page of none would leave a match behind it out of reach", async (t) => {
  const sender = await server.createMailbox();
  const recipient = await server.createMailbox();
  for (let i = 0; i < 12; i++) await sendMessage(server, sender, recipient, `other ${i}`, { 'mex-WorkflowID': 'OTHER' });
  const wanted = [await sendMessage(server, sender, recipient, 'wanted', { 'mex-WorkflowID': 'WANTED' })];
  for (let i = 0; i < 12; i++) await sendMessage(server, sender, recipient, `other ${i}`, { 'mex-WorkflowID': 'OTHER' });
  wanted.push(await sendMessage(server, sender, recipient, 'wanted too', { 'mex-WorkflowID': 'WANTED' }));
  const page = (query: string) => mailboxRequest(server, recipient, { accept: 'v1', path: `/messageexchange/${recipient.id}/inbox?max_results=10&workflow_filter=WANTED${query}` });
  t.deepEqual((await page('')).json().messages, wanted);
  t.deepEqual((await page(`&continue_from=${wanted[0]}`)).json().messages, wanted.slice(1));
  // v2 pages as asked, its link leading on.
  const v2 = await mailboxRequest(server, recipient, { path: `/messageexchange/${recipient.id}/inbox?max_results=10&workflow_filter=WANTED` });
  t.deepEqual(v2.json().messages, []);
  t.truthy(v2.json().links.next);
});

test("v1's filtered inbox reading on past many pages counts, as a whole, no more than the second's allowance: alone in its second it is served, not refused 429 by its own cost on every try", async (t) => {
  // Held: the whole listing falls in one second of the per-second counter.
  const clock = { now: Math.floor(Date.now() / 1000) * 1000 };
  const limited = await startTestServer({ worker: false, maxRequestsPerSecond: 50, appServices: (services) => ({ ...services, now: () => new Date(clock.now) }) });
  try {
    const [sender, recipient] = [await limited.createMailbox(), await limited.createMailbox()];
    // 2,000 messages of another workflow ahead (written to Redis as a listing reads them: sent, they would only slow the test).
    const keys = redisKeys(limited.redisPrefix);
    const filler = limited.redis.pipeline();
    for (let n = 1; n <= 2_000; n++) {
      const id = `20200101000000${String(n).padStart(6, '0')}_AAAAAA`;
      filler.hset(keys.message(id), 'workflowId', 'OTHER');
      filler.zadd(keys.inbox(recipient.id), n, id);
    }
    filler.set(keys.inboxSequence(recipient.id), '2000');
    await filler.exec();
    const wanted = await sendMessage(limited, sender, recipient, 'wanted', { 'mex-WorkflowID': 'WANTED' });
    clock.now += 1000;
    // 200 pages of 10 read, each counted as a request: four times the second's allowance.
    const page = await mailboxRequest(limited, recipient, { accept: 'v1', path: `/messageexchange/${recipient.id}/inbox?max_results=10&workflow_filter=WANTED` });
    t.is(page.status, 200, page.body.toString());
    t.deepEqual(page.json().messages, [wanted]);
  } finally {
    await limited.close();
  }
});

test('max_results outside 10..5000, or not written as a decimal number, is refused with a MESH error', async (t) => {
  for (const value of ['5', '5001', '0x10', '1e1', '10.0', '%2010', '-10', '']) {
    const response = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox?max_results=${value}` });
    t.is(response.status, 400, value);
    t.is(response.json().detail[0].code, '400', value);
  }
  t.is((await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox?max_results=10` })).status, 200);
});

test("a message's mex-StatusTimestamp is its transfer's, as its status is, also when it is downloaded again after its acknowledgement", async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'payload');
  const before = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` });
  t.is(before.headers['mex-statuscode'], '00');
  // Acknowledged in a later second than the transfer's.
  await acknowledgeMessage({ ...server.services, now: () => new Date(Date.now() + 5_000) }, gp.id, messageId);
  const after = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` });
  t.is(after.status, 200);
  t.like(after.headers, { 'mex-statuscode': '00', 'mex-statusdescription': 'Transferred to recipient mailbox', 'mex-statustimestamp': before.headers['mex-statustimestamp'] });
});

test('a message downloaded but not acknowledged stays in the inbox', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'keep me');
  const download = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` });
  t.is(download.body.toString(), 'keep me');
  const inbox = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox?max_results=5000` });
  t.true(inbox.json().messages.includes(messageId));
});

test('tracking by local id finds the one message, and 300 when the local id is not unique', async (t) => {
  const localId = `batch-${randomBytes(4).toString('hex')}`;
  const messageId = await sendMessage(server, lab, gp, 'one', { 'mex-LocalID': localId });
  const one = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking/${localId}` });
  t.is(one.status, 200);
  t.is(one.json().messageId, messageId);

  const secondId = await sendMessage(server, lab, gp, 'two', { 'mex-LocalID': localId });
  const two = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking/${localId}` });
  t.is(two.status, 300);
  // It names them, so each can be tracked by its id.
  t.regex(two.json().detail[0].msg, new RegExp(`${localId} \\(messages (${messageId}, ${secondId}|${secondId}, ${messageId})\\)`));

  const none = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking/no-such-local-id` });
  t.is(none.status, 404);
});

test('tracking by local id is typed application/json, as its v1 body is, also to a client asking for v2: MESH has no v2 form of it', async (t) => {
  const localId = `typed-${randomBytes(4).toString('hex')}`;
  const messageId = await sendMessage(server, lab, gp, 'typed', { 'mex-LocalID': localId });
  for (const accept of ['v1', 'v2'] as const) {
    const tracked = await mailboxRequest(server, lab, { accept, path: `/messageexchange/${lab.id}/outbox/tracking/${localId}` });
    t.is(tracked.status, 200);
    t.like(tracked.json(), { messageId, status: 'Accepted' }, accept);
    t.regex(String(tracked.headers['content-type']), /^application\/json\b/, accept);
  }
  // Its refusals follow the Accept header, as every other refusal does.
  const none = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking/no-such-local-id` });
  t.is(none.status, 404);
  t.is(none.headers['content-type'], 'application/vnd.mesh.v2+json');
  t.is(none.json().detail[0].code, '20');
});

test('tracking by a local id that thousands of messages share answers 300 with how many, naming twenty', async (t) => {
  const localId = `shared-${randomBytes(4).toString('hex')}`;
  const sent = new Set(await Promise.all(Array.from({ length: 30 }, (_, n) => sendMessage(server, lab, gp, `part ${n}`, { 'mex-LocalID': localId }))));
  // The rest as the index holds them (thousands of sends would only slow the test): ids of no record.
  const unrecorded = Array.from({ length: 3_000 }, (_, n) => `UNRECORDED${n}`);
  await server.redis.sadd(redisKeys(server.redisPrefix).localIds(lab.id, localId), ...unrecorded);
  const tracked = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking/${localId}` });
  t.is(tracked.status, 300);
  const [, named, more] = /\(messages (.*) and (\d+) more\)$/.exec(tracked.json().detail[0].msg) ?? [];
  const names = named!.split(', ');
  t.is(names.length, 20);
  t.is(new Set(names).size, 20);
  t.true(names.every((id) => sent.has(id) || unrecorded.includes(id)), names.join(', '));
  t.is(Number(more), 3_010);
});

for (const autoPipelining of [false, true]) {
  test(`a poll right after a send's 202 lists the message, Redis auto-pipelining ${autoPipelining ? 'on' : 'off (the default)'}`, async (t) => {
    const own = autoPipelining ? await startTestServer({ redisAutoPipelining: true }) : server;
    if (own !== server) t.teardown(() => own.close());
    t.is(own.redis.options.enableAutoPipelining, autoPipelining);
    const sender = own === server ? lab : await own.createMailbox();
    const recipient = await own.createMailbox();
    for (const body of ['small', randomBytes(100_000)]) {
      // Not the sendMessage helper, which waits for the server to settle: the poll comes as soon as the answer does.
      const sent = await mailboxRequest(own, sender, {
        method: 'POST',
        path: `/messageexchange/${sender.id}/outbox`,
        headers: { 'mex-To': recipient.id, 'mex-WorkflowID': 'PATH_RESULTS' },
        body,
      });
      t.is(sent.status, 202);
      const listed = await mailboxRequest(own, recipient, { path: `/messageexchange/${recipient.id}/inbox` });
      t.true(listed.json().messages.includes(sent.json().message_id), 'listed at once');
      const download = await mailboxRequest(own, recipient, { path: `/messageexchange/${recipient.id}/inbox/${sent.json().message_id}` });
      t.true(download.body.equals(Buffer.from(body)));
    }
  });
}
