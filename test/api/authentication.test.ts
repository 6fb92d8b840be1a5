import { randomBytes } from 'node:crypto';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import test from 'ava';
import { buildAuthorizationHeader, formatTokenTimestamp } from '../../shared/src/protocol/index.ts';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { createCertificateAuthority, describeCertificate, issueMailboxCertificate } from '../../shared/src/pki/index.ts';
import { REPO_ROOT } from '../../shared/src/dev-paths.ts';
import forge from 'node-forge';
import { buildCertificate, nameAttribute, parseCertificateAuthority } from '../../shared/src/pki/certificate.ts';
import { generateRsaKeyPair } from '../../shared/src/pki/keys.ts';
import { startServerProcess } from '../support/server-process.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_MAILBOX_CACHE_MS } from '../../server/src/config.ts';
import { authenticateMailbox, REPEAT_WINDOW_MS } from '../../server/src/domain/authenticate.ts';
import { ForbiddenError } from '../../server/src/domain/errors.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import { MailboxStore } from '../../server/src/store/mailboxes.ts';
import { PasswordCipher } from '../../server/src/store/password-cipher.ts';
import { startTestServer, TEST_SECRET_KEY, type TestMailbox, type TestServer } from '../support/harness.ts';
import { mailboxRequest, openMailboxRequest, rawRequest, sendMessage } from '../support/http.ts';
import { tokenClaimed } from '../support/token-claims.ts';
import { waitFor } from '../../scripts/services/processes.ts';

const execFileAsync = promisify(execFile);
const CLI = resolve(REPO_ROOT, 'client-cli/src/main.js');

let server: TestServer;
let alice: TestMailbox;
let bob: TestMailbox;
/** Receives what the tests of repeated tokens send (others check bob's inbox stays empty). */
let carol: TestMailbox;

test.before(async () => {
  server = await startTestServer();
  alice = await server.createMailbox();
  bob = await server.createMailbox();
  carol = await server.createMailbox();
});

test.after.always(async () => {
  await server?.close();
});

const inboxOf = (mailbox: TestMailbox): string => `/messageexchange/${mailbox.id}/inbox`;

function token(mailbox: TestMailbox, overrides: { password?: string; sharedKey?: string; at?: Date; nonce?: string } = {}): string {
  return buildAuthorizationHeader({
    mailboxId: mailbox.id,
    password: overrides.password ?? mailbox.password,
    sharedKey: overrides.sharedKey ?? server.sharedKey,
    ...(overrides.at ? { at: overrides.at } : {}),
    ...(overrides.nonce ? { nonce: overrides.nonce } : {}),
  });
}

function assertRefusal(t: import('ava').ExecutionContext, response: { status: number; json: () => any }): void {
  t.is(response.status, 403);
  t.is(response.json().detail[0].code, '403');
}

test('a valid certificate and token are accepted', async (t) => {
  const response = await mailboxRequest(server, alice, { path: inboxOf(alice) });
  t.is(response.status, 200);
});

test('a connection without a client certificate is refused in the TLS handshake', async (t) => {
  await t.throwsAsync(rawRequest(server, { path: inboxOf(alice), clientCertificate: null }));
});

test('a client certificate from another CA is refused in the TLS handshake', async (t) => {
  const otherCa = createCertificateAuthority({ commonName: 'not our CA' });
  const foreign = issueMailboxCertificate({ ca: otherCa, mailboxId: alice.id });
  await t.throwsAsync(
    mailboxRequest(server, alice, { path: inboxOf(alice), clientCertificate: foreign }),
  );
});

test("a CA's certificate signed by the server's CA and named as a mailbox is refused: one that can sign others is no mailbox's", async (t) => {
  const keys = generateRsaKeyPair();
  const intermediate = buildCertificate({
    subject: [nameAttribute('commonName', alice.id)],
    publicKey: keys.publicKey,
    issuer: parseCertificateAuthority(server.ca),
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true },
      { name: 'extKeyUsage', clientAuth: true },
    ],
    validityDays: 30,
  });
  const certificate = { certPem: forge.pki.certificateToPem(intermediate), keyPem: keys.keyPem };
  assertRefusal(t, await mailboxRequest(server, alice, { path: inboxOf(alice), clientCertificate: certificate }));
  t.is((await mailboxRequest(server, alice, { path: inboxOf(alice) })).status, 200, "the mailbox's own certificate");
});

test("another mailbox's certificate with a valid token for this mailbox is refused", async (t) => {
  const response = await mailboxRequest(server, alice, { path: inboxOf(alice), clientCertificate: bob });
  assertRefusal(t, response);
});

test('a certificate granted for a second mailbox may act for it', async (t) => {
  const shared = await server.createMailbox();
  await server.services.mailboxes.grantCertificate(bob.id, shared.id);
  const response = await mailboxRequest(server, shared, { path: inboxOf(shared), clientCertificate: bob });
  t.is(response.status, 200);
});

test('a token made with the wrong password is refused', async (t) => {
  const response = await mailboxRequest(server, alice, { path: inboxOf(alice), authorization: token(alice, { password: 'wrong' }) });
  assertRefusal(t, response);
});

test('a token made with the wrong shared key is refused', async (t) => {
  const response = await mailboxRequest(server, alice, { path: inboxOf(alice), authorization: token(alice, { sharedKey: 'other' }) });
  assertRefusal(t, response);
});

test("a token for another mailbox than the path's is refused", async (t) => {
  const response = await mailboxRequest(server, alice, { path: inboxOf(alice), authorization: token(bob) });
  assertRefusal(t, response);
});

test('missing and garbled Authorization headers are refused', async (t) => {
  for (const authorization of ['', 'NHSMESH', 'Basic abc', `NHSMESH ${alice.id}:a:b:c`, `NHSMESH ${alice.id}:n:1:202611221200:zz`]) {
    const response = await mailboxRequest(server, alice, { path: inboxOf(alice), authorization });
    assertRefusal(t, response);
  }
});

test('a token is checked over the mailbox id as the client wrote it: lower case signed as such passes, a signature over another spelling does not', async (t) => {
  const lower = alice.id.toLowerCase();
  const signedAsSent = buildAuthorizationHeader({ mailboxId: lower, password: alice.password, sharedKey: server.sharedKey });
  t.is((await mailboxRequest(server, alice, { path: inboxOf(alice), authorization: signedAsSent })).status, 200);
  const signedUpper = token(alice).replace(`NHSMESH ${alice.id}:`, `NHSMESH ${lower}:`);
  assertRefusal(t, await mailboxRequest(server, alice, { path: inboxOf(alice), authorization: signedUpper }));
});

test('a certificate granted for a second mailbox acts for it only while its own mailbox is active', async (t) => {
  const holder = await server.createMailbox();
  const shared = await server.createMailbox();
  await server.services.mailboxes.grantCertificate(holder.id, shared.id);
  t.is((await mailboxRequest(server, shared, { path: inboxOf(shared), clientCertificate: holder })).status, 200);
  await server.services.mailboxes.setActive(holder.id, false);
  assertRefusal(t, await mailboxRequest(server, shared, { path: inboxOf(shared), clientCertificate: holder }));
  t.is((await mailboxRequest(server, shared, { path: inboxOf(shared) })).status, 200, 'its own certificate still works');
});

test('a token without the NHSMESH scheme (legacy clients) is accepted', async (t) => {
  const legacy = token(alice).slice('NHSMESH '.length);
  const response = await mailboxRequest(server, alice, { path: inboxOf(alice), authorization: legacy });
  t.is(response.status, 200);
});

test('a used token is refused for any other request; the identical retry of a harmless one is served, of a send answered with its message (HTTP clients retry so after a lost answer)', async (t) => {
  const used = token(alice);
  t.is((await mailboxRequest(server, alice, { path: inboxOf(alice), authorization: used })).status, 200);
  t.is((await mailboxRequest(server, alice, { path: inboxOf(alice), authorization: used })).status, 200, 'the same request again');
  assertRefusal(t, await mailboxRequest(server, alice, { path: `/messageexchange/${alice.id}/count`, authorization: used }));
  t.is((await mailboxRequest(server, alice, { method: 'HEAD', path: inboxOf(alice), authorization: used })).status, 403);
  // Another query is another request: one token must not page through an inbox or track every message.
  assertRefusal(t, await mailboxRequest(server, alice, { path: `${inboxOf(alice)}?max_results=10`, authorization: used }));
  const tracking = token(alice);
  const track = (messageId: string) => mailboxRequest(server, alice, { path: `/messageexchange/${alice.id}/outbox/tracking?messageID=${messageId}`, authorization: tracking });
  t.is((await track('20261130120000000000_AAAAAA')).status, 404);
  t.is((await track('20261130120000000000_AAAAAA')).status, 404, 'the same request again');
  assertRefusal(t, await track('20261130120000000000_BBBBBB'));
  const recipient = await server.createMailbox();
  const send = (authorization: string, { outbox = 'outbox', localId = 'replayed', body = 'once' } = {}) =>
    mailboxRequest(server, alice, {
      method: 'POST',
      path: `/messageexchange/${alice.id}/${outbox}`,
      authorization,
      headers: { 'mex-To': recipient.id, 'mex-WorkflowID': 'REPLAY', 'mex-LocalID': localId },
      body,
    });
  const received = async (): Promise<readonly string[]> => (await server.services.messages.inboxPage(recipient.id, 10, undefined)).messageIds;
  const sendToken = token(alice);
  const sent = await send(sendToken);
  t.is(sent.status, 202);
  const messageId = sent.json().message_id;
  const retried = await send(sendToken);
  t.is(retried.status, 202);
  t.is(retried.json().message_id, messageId, 'the message the first send created');
  assertRefusal(t, await send(sendToken, { localId: 'another message' }));
  assertRefusal(t, await send(sendToken, { body: 'ONCE' }));
  t.deepEqual(await received(), [messageId], 'one message');
  // The router matches paths in any letter case: so does the rule that a send is never done twice.
  const shoutedToken = token(alice);
  t.is((await send(shoutedToken, { outbox: 'OUTBOX' })).status, 202);
  assertRefusal(t, await send(shoutedToken, { outbox: 'OUTBOX', localId: 'another message' }));
  t.is((await received()).length, 2);
});

test('a used token is remembered by a digest of its request: a long path takes no more room', async (t) => {
  const used = token(alice);
  const longPath = `/messageexchange/${alice.id}/outbox/tracking/${'x'.repeat(5_000)}`;
  await mailboxRequest(server, alice, { path: longPath, authorization: used });
  const [, nonce, nonceCount] = used.slice('NHSMESH '.length).split(':');
  const stored = await server.redis.get(redisKeys(server.redisPrefix).usedToken(alice.id, nonce!, nonceCount!));
  t.true(stored !== null && stored.length < 60, `stored: ${stored?.length} characters`);
  t.is((await mailboxRequest(server, alice, { path: longPath, authorization: used })).status, 404, 'its retry is still recognised (and served: not found)');
});

test("a used token is remembered as long as its timestamp keeps it acceptable (two hours after it, and a margin), not longer: Redis holds one per request", async (t) => {
  const keyOf = (authorization: string) => {
    const [, nonce, nonceCount] = authorization.slice('NHSMESH '.length).split(':');
    return redisKeys(server.redisPrefix).usedToken(alice.id, nonce!, nonceCount!);
  };
  const HOUR = 60 * 60_000;
  const fresh = token(alice);
  const hourOld = token(alice, { at: new Date(Date.now() - HOUR) });
  for (const used of [fresh, hourOld]) t.is((await mailboxRequest(server, alice, { path: inboxOf(alice), authorization: used })).status, 200);
  const kept = async (authorization: string) => (await server.redis.pttl(keyOf(authorization))) / HOUR;
  // Timestamps are to the minute: a fresh one is up to a minute old.
  t.true((await kept(fresh)) > 2 - 1 / 60 && (await kept(fresh)) <= 2 + 5 / 60, `fresh: kept ${await kept(fresh)} h`);
  t.true((await kept(hourOld)) > 1 - 1 / 60 && (await kept(hourOld)) <= 1 + 5 / 60, `an hour old: kept ${await kept(hourOld)} h`);
  assertRefusal(t, await mailboxRequest(server, alice, { path: `/messageexchange/${alice.id}/count`, authorization: hourOld }));
});

test('a used token is not accepted again, even for its own request, once the repeat window has passed', async (t) => {
  const used = token(alice);
  const credentials = { certificateCommonName: alice.id, mailboxId: alice.id, authorization: used, request: 'GET /anything', repeatable: true };
  const first = await authenticateMailbox(server.services, credentials);
  t.false(first.repeated);
  t.true((await authenticateMailbox(server.services, credentials)).repeated);
  const later = { ...server.services, now: () => new Date(Date.now() + REPEAT_WINDOW_MS + 60_000) };
  await t.throwsAsync(authenticateMailbox(later, credentials), { instanceOf: ForbiddenError });
  await t.throwsAsync(authenticateMailbox(server.services, { ...credentials, repeatable: false }), { instanceOf: ForbiddenError });
});

test('a certificate name is compared as a mailbox id, in ASCII: look-alike letters that upper-case to it (ſ to S, ı to I) are not the mailbox; another letter case is', async (t) => {
  const id = `LOOKSI${Date.now() % 1_000_000}`;
  const mailbox = await server.createMailbox({ id });
  const credentials = (certificateCommonName: string) => ({
    certificateCommonName,
    mailboxId: id,
    authorization: token(mailbox),
    request: 'GET /anything',
    repeatable: true,
  });
  const lookAlike = id.replace('SI', 'ſı');
  t.is(lookAlike.toUpperCase(), id, 'JavaScript upper-cases it to the id');
  await t.throwsAsync(authenticateMailbox(server.services, credentials(lookAlike)), { instanceOf: ForbiddenError });
  t.is((await authenticateMailbox(server.services, credentials(id.toLowerCase()))).mailbox.id, id);
});

test('the mailbox id in the path is compared in ASCII too: a look-alike (ı for I) is refused with the 403, with the right certificate and token; another letter case is served', async (t) => {
  // Not the clock's digits alone: the test above may take the same millisecond.
  const id = `LOOKSI${randomBytes(4).toString('hex').toUpperCase()}`;
  const mailbox = await server.createMailbox({ id });
  const lookAlike = id.replace('SI', 'Sı');
  t.is(lookAlike.toUpperCase(), id, 'JavaScript upper-cases it to the id');
  const refused = await mailboxRequest(server, mailbox, { path: `/messageexchange/${encodeURIComponent(lookAlike)}/inbox` });
  t.is(refused.status, 403, refused.body.toString());
  const served = await mailboxRequest(server, mailbox, { path: `/messageexchange/${id.toLowerCase()}/inbox` });
  t.is(served.status, 200, served.body.toString());
});

test('the same send token sent several times at once creates one message', async (t) => {
  const recipient = await server.createMailbox();
  const once = token(alice);
  const responses = await Promise.all(
    Array.from({ length: 5 }, () =>
      mailboxRequest(server, alice, {
        method: 'POST',
        path: `/messageexchange/${alice.id}/outbox`,
        authorization: once,
        headers: { 'mex-To': recipient.id, 'mex-WorkflowID': 'AT_ONCE' },
        body: 'once',
      }),
    ),
  );
  // One creates the message; one finishing before another's token is checked is answered with it.
  const accepted = responses.filter((response) => response.status === 202);
  t.true(accepted.length >= 1);
  t.is(new Set(accepted.map((response) => response.json().message_id)).size, 1, 'one message');
  // The others: the first is still being stored (503, which clients retry), or it is told them.
  t.true(responses.every((response) => response.status === 202 || response.status === 503), responses.map((response) => response.status).join());
  t.deepEqual((await server.services.messages.inboxPage(recipient.id, 10, undefined)).messageIds, [accepted[0]!.json().message_id]);
});

test('a final chunk retried with its token after a lost answer is answered 202 as the first time; another request for it 423', async (t) => {
  const messageId = await sendMessage(server, alice, carol, 'first half, ', { 'mex-WorkflowID': 'LOST_ANSWER', 'mex-Chunk-Range': '1:2' });
  const lastChunk = (authorization?: string) =>
    mailboxRequest(server, alice, {
      method: 'POST',
      path: `/messageexchange/${alice.id}/outbox/${messageId}/2`,
      headers: { 'mex-Chunk-Range': '2:2' },
      body: 'second half',
      ...(authorization ? { authorization } : {}),
    });
  const retried = token(alice);
  t.is((await lastChunk(retried)).status, 202);
  t.is((await lastChunk(retried)).status, 202, 'its retry: the same answer');
  t.is((await lastChunk()).status, 423, 'a new upload of a complete message');
  const download = await mailboxRequest(server, carol, { path: `${inboxOf(carol)}/${messageId}/2` });
  t.is(download.body.toString(), 'second half');
});

test("a chunk upload's token reused for other content stores nothing: refused when its headers differ (another length), answered as its first use when they do not (the same length, or streamed), and the chunk stored stays; the handshake of a mailbox named OUTBOX is no send, its token used as any other", async (t) => {
  const messageId = await sendMessage(server, alice, carol, 'first, ', { 'mex-WorkflowID': 'CHUNK_REPLAY', 'mex-Chunk-Range': '1:3' });
  const chunk = (authorization: string, body: string, headers: Record<string, string> = {}) =>
    mailboxRequest(server, alice, { method: 'POST', path: `/messageexchange/${alice.id}/outbox/${messageId}/2`, headers: { 'mex-Chunk-Range': '2:3', ...headers }, body, authorization });
  const used = token(alice);
  t.is((await chunk(used, 'second, ')).status, 202);
  t.is((await chunk(used, 'second, ')).status, 202, 'its identical retry');
  assertRefusal(t, await chunk(used, 'other content'));
  // Nothing tells these from a retry whose answer was lost before the body is read: the chunk its first use stored stays.
  t.is((await chunk(used, 'SECOND! ')).status, 202, 'the same length');
  const streamed = token(alice);
  t.is((await chunk(streamed, 'second, ', { 'transfer-encoding': 'chunked' })).status, 202);
  t.is((await chunk(streamed, 'entirely different and longer content', { 'transfer-encoding': 'chunked' })).status, 202, 'streamed, of another length');
  t.deepEqual(await server.services.messages.storedChunks(messageId), [{ number: 1, size: 7 }, { number: 2, size: 8 }], 'chunk 2 as first sent');
  t.is((await mailboxRequest(server, alice, { method: 'POST', path: `/messageexchange/${alice.id}/outbox/${messageId}/3`, headers: { 'mex-Chunk-Range': '3:3' }, body: 'third' })).status, 202);
  await server.settled();
  t.is((await mailboxRequest(server, carol, { path: `/messageexchange/${carol.id}/inbox/${messageId}/2` })).body.toString(), 'second, ', 'as the recipient gets it');

  const outbox = await server.createMailbox({ id: 'OUTBOX' });
  const handshakeToken = token(outbox);
  for (let i = 0; i < 2; i++) {
    t.is((await mailboxRequest(server, outbox, { method: 'POST', path: '/messageexchange/OUTBOX', authorization: handshakeToken })).status, 200);
  }
  assertRefusal(t, await mailboxRequest(server, outbox, { path: '/messageexchange/OUTBOX/count', authorization: handshakeToken }));
});

test("a chunk re-upload retried with its token while its first try is still storing is stored: the copy of the chunk recorded before is not the retry's first try's, and keeping it would answer 202 for bytes never stored", async (t) => {
  const original = randomBytes(70_000);
  const messageId = await sendMessage(server, alice, carol, original, { 'mex-WorkflowID': 'REUPLOAD_RETRY', 'mex-Chunk-Range': '1:2' });
  const replacement = randomBytes(80_000);
  const path = `/messageexchange/${alice.id}/outbox/${messageId}/1`;
  const headers = { 'mex-Chunk-Range': '1:2', 'content-length': String(replacement.length) };
  const authorization = token(alice);
  const objectsOf = async (): Promise<number> =>
    (await server.connections.s3.send(new ListObjectsV2Command({ Bucket: server.bucket, Prefix: `messages/${messageId}/` }))).KeyCount ?? 0;
  // The first try: its body stalls part-way (a connection gone silent) while it is being stored.
  const first = openMailboxRequest(server, alice, { method: 'POST', path, headers, authorization });
  first.on('error', () => undefined);
  const closed = new Promise((resolve) => first.on('close', resolve));
  first.write(replacement.subarray(0, 20_000));
  t.true(await waitFor(async () => (await objectsOf()) === 2, 30_000, 20), 'the first try is being stored');
  // The client gives up on it and sends it again, identical, token and all.
  const retry = await mailboxRequest(server, alice, { method: 'POST', path, headers, body: replacement, authorization });
  t.is(retry.status, 202, retry.body.toString());
  // The first try's connection is then found dead: nothing of it is kept.
  first.destroy();
  await closed;
  t.true(await waitFor(async () => (await objectsOf()) === 1, 30_000), 'the cut-off copy is deleted');
  const last = await mailboxRequest(server, alice, { method: 'POST', path: `/messageexchange/${alice.id}/outbox/${messageId}/2`, headers: { 'mex-Chunk-Range': '2:2' }, body: 'end' });
  t.is(last.status, 202);
  const chunk1 = await mailboxRequest(server, carol, { path: `${inboxOf(carol)}/${messageId}` });
  t.is(chunk1.status, 206);
  t.true(chunk1.body.equals(replacement), chunk1.body.equals(original) ? 'the message holds the chunk as first sent' : 'the message holds other bytes');
});

test('a send refused before its message was recorded gives its token back: the identical retry is refused the same way, and a corrected one is sent', async (t) => {
  const recipient = await server.createMailbox();
  const used = token(alice);
  const send = (to: string) =>
    mailboxRequest(server, alice, { method: 'POST', path: `/messageexchange/${alice.id}/outbox`, authorization: used, headers: { 'mex-To': to, 'mex-WorkflowID': 'REFUSED' }, body: 'x' });
  const refused = await send('NOSUCHMAILBOX');
  t.is(refused.status, 417);
  let again = await send('NOSUCHMAILBOX');
  // The token is given back once the server has seen the first request's connection done with it.
  for (let attempt = 0; attempt < 50 && again.status !== 417; attempt++) {
    await sleep(100);
    again = await send('NOSUCHMAILBOX');
  }
  t.is(again.status, 417, 'refused as the first time, not as a reused token');
  let sent = await send(recipient.id);
  for (let attempt = 0; attempt < 50 && sent.status === 403; attempt++) {
    await sleep(100);
    sent = await send(recipient.id);
  }
  t.is(sent.status, 202);
  t.deepEqual((await server.services.messages.inboxPage(recipient.id, 10, undefined)).messageIds, [sent.json().message_id]);
});

test('a token is used up once its request is served, even when the answer is an error', async (t) => {
  const used = token(alice);
  const served = await mailboxRequest(server, alice, { path: `${inboxOf(alice)}/not-a-message-id`, authorization: used });
  t.is(served.status, 404);
  assertRefusal(t, await mailboxRequest(server, alice, { path: inboxOf(alice), authorization: used }));
});

test('a token whose request was cut off before it was served may be sent again (client retry)', async (t) => {
  const retried = token(alice);
  const request = openMailboxRequest(server, alice, {
    method: 'POST',
    path: `/messageexchange/${alice.id}/outbox`,
    authorization: retried,
    headers: { 'mex-To': bob.id, 'mex-WorkflowID': 'RETRY_TEST', 'content-length': '100000' },
  });
  const cut = new Promise<void>((resolve) => request.on('error', () => resolve()));
  request.write(Buffer.alloc(1000));
  // The server has authenticated it (else a retry would pass for want of a claim): drop the connection mid-body.
  t.true(await tokenClaimed(server.redis, server.redisPrefix, retried), 'the server claimed the token');
  request.destroy();
  await cut;
  let status = 0;
  // The claim is given back when the server sees the connection close; poll until it has.
  for (let attempt = 0; attempt < 150 && status !== 200; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    status = (await mailboxRequest(server, alice, { path: inboxOf(alice), authorization: retried })).status;
  }
  t.is(status, 200);
  t.deepEqual(await server.services.messages.inboxPage(bob.id, 10, undefined), { messageIds: [], next: undefined });
});

test('timestamps more than two hours away are refused; within the window they pass', async (t) => {
  const hour = 60 * 60 * 1000;
  for (const offset of [-2 * hour - 120_000, 2 * hour + 120_000]) {
    const stale = token(alice, { at: new Date(Date.now() + offset) });
    assertRefusal(t, await mailboxRequest(server, alice, { path: inboxOf(alice), authorization: stale }));
  }
  const skewed = token(alice, { at: new Date(Date.now() - hour) });
  t.is((await mailboxRequest(server, alice, { path: inboxOf(alice), authorization: skewed })).status, 200);
  t.is(formatTokenTimestamp(new Date(Date.UTC(2026, 0, 2, 3, 4))), '202601020304');
});

test('an unknown mailbox is refused exactly like a wrong password', async (t) => {
  const ghost: TestMailbox = { ...alice, id: 'NOSUCHBOX1' };
  const unknown = await mailboxRequest(server, ghost, { path: inboxOf(ghost), clientCertificate: alice });
  const wrong = await mailboxRequest(server, alice, { path: inboxOf(alice), authorization: token(alice, { password: 'x' }) });
  t.is(unknown.status, wrong.status);
  t.deepEqual(Object.keys(unknown.json()), Object.keys(wrong.json()));
  t.deepEqual(unknown.json().detail, wrong.json().detail);
});

test('a disabled mailbox is refused, and accepted again once enabled', async (t) => {
  const carol = await server.createMailbox();
  await server.services.mailboxes.setActive(carol.id, false);
  assertRefusal(t, await mailboxRequest(server, carol, { path: inboxOf(carol) }));
  await server.services.mailboxes.setActive(carol.id, true);
  t.is((await mailboxRequest(server, carol, { path: inboxOf(carol) })).status, 200);
});

test('mailbox changes by another process (an admin command): a new password works at once, a deactivation within the cache time', async (t) => {
  const dave = await server.createMailbox();
  t.is((await mailboxRequest(server, dave, { path: inboxOf(dave) })).status, 200);
  // The server now remembers dave's mailbox; the admin's store is another one, as in another process.
  const admin = new MailboxStore(server.redis, redisKeys(server.redisPrefix), new PasswordCipher(TEST_SECRET_KEY));
  t.true(await admin.setPassword(dave.id, 'rotated-password'));
  const rotated = (): string => token(dave, { password: 'rotated-password' });
  t.is((await mailboxRequest(server, dave, { path: inboxOf(dave), authorization: rotated() })).status, 200);
  assertRefusal(t, await mailboxRequest(server, dave, { path: inboxOf(dave) }));

  t.true(await admin.setActive(dave.id, false));
  await sleep(DEFAULT_MAILBOX_CACHE_MS + 200);
  assertRefusal(t, await mailboxRequest(server, dave, { path: inboxOf(dave), authorization: rotated() }));
});

test('a store with a read cache answers a mailbox from memory for the cache time; its own changes and a fresh read show at once', async (t) => {
  const erin = await server.createMailbox();
  const keys = redisKeys(server.redisPrefix);
  const cipher = new PasswordCipher(TEST_SECRET_KEY);
  // A cache time no test run outlasts, so what is remembered is certain.
  const cached = new MailboxStore(server.redis, keys, cipher, { readCache: { ttlMs: 600_000, maxEntries: 10 } });
  const uncached = new MailboxStore(server.redis, keys, cipher);
  t.true((await cached.get(erin.id))!.active);

  t.true(await uncached.setActive(erin.id, false));
  t.false((await uncached.get(erin.id))!.active, 'without a cache, every read is of Redis');
  t.true((await cached.get(erin.id))!.active, 'remembered: the change was made elsewhere');
  t.false((await cached.get(erin.id, { fresh: true }))!.active, 'a fresh read sees it');
  t.false((await cached.get(erin.id))!.active, 'and is remembered in turn');

  t.true(await cached.setActive(erin.id, true));
  t.true((await cached.get(erin.id))!.active, 'its own change shows at once');
});

test('Redis holds mailbox passwords only encrypted', async (t) => {
  const stored = await server.redis.hget(redisKeys(server.redisPrefix).mailbox(alice.id), 'password');
  t.truthy(stored);
  t.false(stored!.includes(alice.password));
  t.regex(stored!, /^v1:/);
});

test('the access log names the certificate that made each request: one acting for another mailbox by a grant is told apart', async (t) => {
  const running = await startServerProcess({ MESHBOX_LOG_LEVEL: 'info' });
  try {
    const [holder, shared] = [await running.createMailbox(), await running.createMailbox()];
    await execFileAsync(process.execPath, [CLI, 'admin', 'cert', 'grant', holder.id, shared.id], { env: { ...process.env, ...running.adminEnvironment } });
    t.is((await mailboxRequest(running, shared, { path: inboxOf(shared), clientCertificate: holder })).status, 200);
    const serial = describeCertificate(holder.certPem).serialNumber;
    const logged = (): string | undefined => running.output().split('\n').find((entry) => entry.includes('"msg":"request"') && entry.includes(inboxOf(shared)));
    // The log reaches the pipe a moment after the answer.
    for (let attempt = 0; attempt < 100 && !logged(); attempt++) await sleep(50);
    const line = JSON.parse(logged() ?? '{}') as { certificate?: { commonName?: string; serialNumber?: string } };
    t.is(line?.certificate?.commonName, holder.id);
    t.is(line?.certificate?.serialNumber?.toLowerCase(), serial);
  } finally {
    await running.stop();
  }
});

test('neither a token nor a password reaches the log, of a request served or refused, at the most detailed log level', async (t) => {
  const running = await startServerProcess({ MESHBOX_LOG_LEVEL: 'debug' });
  try {
    const mailbox = await running.createMailbox();
    const good = buildAuthorizationHeader({ mailboxId: mailbox.id, password: mailbox.password, sharedKey: running.sharedKey });
    const bad = buildAuthorizationHeader({ mailboxId: mailbox.id, password: 'not-the-password', sharedKey: running.sharedKey });
    t.is((await mailboxRequest(running, mailbox, { path: inboxOf(mailbox), authorization: good })).status, 200);
    t.is((await mailboxRequest(running, mailbox, { path: `/messageexchange/${mailbox.id}/count`, authorization: bad })).status, 403);
    const logged = (): number => running.output().split('\n').filter((entry) => entry.includes('"msg":"request"')).length;
    t.true(await waitFor(async () => logged() === 2, 10_000, 20), 'both requests logged');
    const secrets = { 'the served token': good.split(':').at(-1)!, 'the refused token': bad.split(':').at(-1)!, 'the password': mailbox.password };
    for (const [name, secret] of Object.entries(secrets)) t.false(running.output().includes(secret), name);
  } finally {
    await running.stop();
  }
});
