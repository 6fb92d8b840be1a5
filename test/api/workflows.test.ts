import test from 'ava';
import { DEFAULT_MAILBOX_CACHE_MS } from '../../server/src/config.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import { MailboxStore, type UnreadableMailboxError } from '../../server/src/store/mailboxes.ts';
import { PasswordCipher } from '../../server/src/store/password-cipher.ts';
import { startTestServer, TEST_SECRET_KEY, type TestMailbox, type TestServer } from '../support/harness.ts';
import { mailboxRequest, rawRequest, sendMessage } from '../support/http.ts';
import { overriding } from '../support/overriding.ts';

let server: TestServer;
let lab: TestMailbox;
let gp: TestMailbox;
let otherGp: TestMailbox;

test.before(async () => {
  server = await startTestServer();
  lab = await server.createMailbox({ name: 'Lab', odsCode: 'RX1', workflows: ['PATH_RESULTS', 'PATH_ORDERS'] });
  gp = await server.createMailbox({ name: 'Riverside GP', odsCode: 'A81001', workflows: ['PATH_RESULTS', 'RAD_RESULTS'] });
  otherGp = await server.createMailbox({ name: 'Hillside GP', odsCode: 'A81002', workflows: ['PATH_RESULTS'] });
});

test.after.always(async () => {
  await server?.close();
});

function send(from: TestMailbox, to: TestMailbox, workflowId: string) {
  return mailboxRequest(server, from, {
    method: 'POST',
    path: `/messageexchange/${from.id}/outbox`,
    headers: { 'mex-To': to.id, 'mex-WorkflowID': workflowId },
    body: 'x',
  });
}

test.serial('a workflow the sender may not send, or the recipient may not receive, is refused with 417 code 17, saying which', async (t) => {
  t.is((await send(lab, gp, 'PATH_RESULTS')).status, 202);
  const notSendable = await send(lab, gp, 'RAD_RESULTS');
  t.is(notSendable.status, 417);
  t.like(notSendable.json().detail[0], { event: 'SEND', code: '17', msg: `Workflow ID not registered for mailbox: RAD_RESULTS (${lab.id} may not send it)` });
  const notReceivable = await send(lab, gp, 'PATH_ORDERS');
  t.is(notReceivable.status, 417);
  t.like(notReceivable.json().detail[0], { code: '17', msg: `Workflow ID not registered for mailbox: PATH_ORDERS (${gp.id} may not receive it)` });
  const v1 = await mailboxRequest(server, lab, {
    method: 'POST',
    accept: 'v1',
    path: `/messageexchange/${lab.id}/outbox`,
    headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'PATH_ORDERS' },
    body: 'x',
  });
  t.like(v1.json(), { errorCode: '17', errorEvent: 'SEND' });
});

test.serial('allowing and denying a workflow takes effect at once, and keeps the lookups in step', async (t) => {
  t.is(await server.services.mailboxes.setWorkflow(gp.id, 'PATH_ORDERS', 'receive', true), 'ok');
  t.is((await send(lab, gp, 'PATH_ORDERS')).status, 202);
  const receivers = async () =>
    (await rawRequest(server, { path: '/messageexchange/workflowsearch/PATH_ORDERS', clientCertificate: lab })).json().results.map((r: { mailbox_id: string }) => r.mailbox_id);
  t.true((await receivers()).includes(gp.id));

  t.is(await server.services.mailboxes.setWorkflow(gp.id, 'PATH_ORDERS', 'receive', false), 'ok');
  t.is((await send(lab, gp, 'PATH_ORDERS')).status, 417);
  t.false((await receivers()).includes(gp.id));
  t.is(await server.services.mailboxes.setWorkflow('NOSUCH', 'W', 'send', true), 'not_found');
});

test("a mailbox allowing any workflow ('*') receives anything but is not listed by lookups, and cannot deny one workflow", async (t) => {
  const open = await server.createMailbox({ odsCode: 'A81001' });
  t.is((await send(lab, open, 'PATH_RESULTS')).status, 202);
  const lookup = await rawRequest(server, { path: '/messageexchange/endpointlookup/A81001/PATH_RESULTS', clientCertificate: lab, headers: { accept: 'application/vnd.mesh.v2+json' } });
  t.false(lookup.json().results.some((result: { mailbox_id: string }) => result.mailbox_id === open.id));
  t.is(await server.services.mailboxes.setWorkflow(open.id, 'PATH_RESULTS', 'receive', false), 'wildcard');
});

test('endpoint lookup finds the receiving mailboxes of an ODS code, in v2 and v1 shapes', async (t) => {
  const v2 = await rawRequest(server, { path: '/messageexchange/endpointlookup/a81001/PATH_RESULTS', clientCertificate: lab, headers: { accept: 'application/vnd.mesh.v2+json' } });
  t.is(v2.status, 200);
  t.deepEqual(v2.json(), { results: [{ mailbox_id: gp.id, mailbox_name: 'Riverside GP' }] });
  const v1 = await rawRequest(server, { path: '/messageexchange/endpointlookup/A81001/PATH_RESULTS', clientCertificate: lab });
  t.truthy(v1.json().query_id);
  t.deepEqual(v1.json().results, [{ address: gp.id, description: 'Riverside GP', endpoint_type: 'MESH' }]);
  const none = await rawRequest(server, { path: '/messageexchange/endpointlookup/A81001/NO_SUCH_WORKFLOW', clientCertificate: lab });
  t.deepEqual(none.json().results, []);
});

test.serial('workflow search lists every active receiver; a disabled mailbox drops out', async (t) => {
  const search = async () =>
    (await rawRequest(server, { path: '/messageexchange/workflowsearch/PATH_RESULTS', clientCertificate: lab })).json().results.map((r: { mailbox_id: string }) => r.mailbox_id);
  t.deepEqual((await search()).sort(), [lab.id, gp.id, otherGp.id].sort());
  await server.services.mailboxes.setActive(otherGp.id, false);
  t.false((await search()).includes(otherGp.id));
  await server.services.mailboxes.setActive(otherGp.id, true);
});

test('lookups still need a client certificate from our CA', async (t) => {
  await t.throwsAsync(rawRequest(server, { path: '/messageexchange/workflowsearch/PATH_RESULTS', clientCertificate: null }));
});

test('the inbox workflow_filter selects messages by workflow, and links.next keeps the filter', async (t) => {
  const sender = await server.createMailbox();
  const recipient = await server.createMailbox();
  const sent: Record<string, string> = {};
  for (const workflow of ['PATH_RESULTS', 'PATH_ORDERS', 'RAD_RESULTS']) sent[workflow] = await sendMessage(server, sender, recipient, workflow, { 'mex-WorkflowID': workflow });
  const list = async (filter: string) =>
    (await mailboxRequest(server, recipient, { path: `/messageexchange/${recipient.id}/inbox?workflow_filter=${encodeURIComponent(filter)}` })).json().messages;
  t.deepEqual(await list('PATH_*'), [sent.PATH_RESULTS, sent.PATH_ORDERS]);
  t.deepEqual(await list('!*RESULTS*'), [sent.PATH_ORDERS]);
  t.deepEqual(await list('RAD_RESULTS'), [sent.RAD_RESULTS]);

  for (let i = 0; i < 10; i++) await sendMessage(server, sender, recipient, 'more', { 'mex-WorkflowID': 'PATH_RESULTS' });
  const page = await mailboxRequest(server, recipient, { path: `/messageexchange/${recipient.id}/inbox?max_results=10&workflow_filter=RAD_RESULTS` });
  t.deepEqual(page.json().messages, [sent.RAD_RESULTS]);
  t.regex(page.json().links.next, /workflow_filter=RAD_RESULTS/);
});

test('a mailbox stored under another secret key is left out of lookups and listings; a send to it or a request as it is answered 503', async (t) => {
  const readable = await server.createMailbox({ name: 'Readable', odsCode: 'B99001', workflows: ['KEY_TEST'] });
  const unreadable = await server.createMailbox({ name: 'Unreadable', odsCode: 'B99001', workflows: ['KEY_TEST'] });
  // What an admin command run with the wrong MESHBOX_SECRET_KEY used to leave behind.
  const keys = redisKeys(server.redisPrefix);
  t.true(await new MailboxStore(server.redis, keys, new PasswordCipher('not the server key')).setPassword(unreadable.id, unreadable.password));

  const lookup = await rawRequest(server, { path: '/messageexchange/endpointlookup/B99001/KEY_TEST', clientCertificate: lab, headers: { accept: 'application/vnd.mesh.v2+json' } });
  t.is(lookup.status, 200);
  t.deepEqual(lookup.json().results, [{ mailbox_id: readable.id, mailbox_name: 'Readable' }]);
  const search = await rawRequest(server, { path: '/messageexchange/workflowsearch/KEY_TEST', clientCertificate: lab });
  t.is(search.status, 200);
  t.deepEqual(search.json().results.map((r: { mailbox_id: string }) => r.mailbox_id), [readable.id]);

  const skipped: UnreadableMailboxError[] = [];
  const listing = new MailboxStore(server.redis, keys, new PasswordCipher(TEST_SECRET_KEY), { onUnreadable: (error) => skipped.push(error) });
  const listed = (await listing.list()).map((mailbox) => mailbox.id);
  t.true(listed.includes(readable.id));
  t.false(listed.includes(unreadable.id));
  t.deepEqual(skipped.map((error) => error.mailboxId), [unreadable.id]);
  t.regex(skipped[0]!.message, /not encrypted under this MESHBOX_SECRET_KEY.*admin mailbox password/);

  const sent = await send(readable, unreadable, 'KEY_TEST');
  t.is(sent.status, 503);
  t.like(sent.json().detail[0], { code: '503', msg: `Service unavailable: mailbox ${unreadable.id} cannot be read` });
  t.is((await mailboxRequest(server, unreadable, { path: `/messageexchange/${unreadable.id}/inbox` })).status, 503);

  // Mended by an admin (a new password, under the right key): lookups find it at once.
  t.true(await new MailboxStore(server.redis, keys, new PasswordCipher(TEST_SECRET_KEY)).setPassword(unreadable.id, 'a new password'));
  const mended = await rawRequest(server, { path: '/messageexchange/workflowsearch/KEY_TEST', clientCertificate: lab });
  t.deepEqual(mended.json().results.map((r: { mailbox_id: string }) => r.mailbox_id), [readable.id, unreadable.id].sort());
});

test("a lookup's answer is kept while the directory is unchanged, and a change an admin makes from another process shows at once", async (t) => {
  // Its own server: the other tests here change the directory while this one looks.
  const own = await startTestServer();
  try {
    const keys = redisKeys(own.redisPrefix);
    const viewer = await own.createMailbox();
    const first = await own.createMailbox({ name: 'Kept one', workflows: ['KEPT_TEST'] });
    const second = await own.createMailbox({ name: 'Kept two', workflows: ['KEPT_TEST'] });
    const names = async () => {
      const search = await rawRequest(own, { path: '/messageexchange/workflowsearch/KEPT_TEST', clientCertificate: viewer });
      return Object.fromEntries((search.json().results as { mailbox_id: string; mailbox_name: string }[]).map((r) => [r.mailbox_id, r.mailbox_name]));
    };
    t.deepEqual(await names(), { [first.id]: 'Kept one', [second.id]: 'Kept two' });

    // An edit no meshbox command makes (by hand, in Redis) is not counted as a change: the answer
    // kept stands, even once the server's own copy of the mailbox has aged out.
    await own.redis.hset(keys.mailbox(first.id), 'name', 'Edited by hand');
    await new Promise((done) => setTimeout(done, DEFAULT_MAILBOX_CACHE_MS + 100));
    t.is((await names())[first.id], 'Kept one');

    // The admin CLI's own store on the same Redis, as `meshbox admin mailbox ...` opens it.
    const admin = new MailboxStore(own.redis, keys, new PasswordCipher(TEST_SECRET_KEY));
    t.true(await admin.create({ id: 'KEPT3', password: 'pw', name: 'Kept three', workflows: ['KEPT_TEST'] }));
    t.deepEqual(await names(), { [first.id]: 'Edited by hand', [second.id]: 'Kept two', KEPT3: 'Kept three' });
    t.true(await admin.setActive(second.id, false));
    t.deepEqual(Object.keys(await names()).sort(), [first.id, 'KEPT3'].sort());
  } finally {
    await own.close();
  }
});

test('lookups asked together, or again while the directory is unchanged, read its mailboxes once', async (t) => {
  // Under the test server's prefix, so its clean-up takes these keys too.
  const keys = redisKeys(`${server.redisPrefix}lookup-reads-${Date.now()}:`);
  let mailboxReads = 0;
  const counted = new Proxy(server.redis, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (typeof args[0] === 'string' && args[0].startsWith(keys.mailbox(''))) mailboxReads += 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  const store = new MailboxStore(counted, keys, new PasswordCipher(TEST_SECRET_KEY));
  for (const id of ['ONCE1', 'ONCE2', 'ONCE3']) await store.create({ id, password: 'pw', workflows: ['ONCE_TEST'] });
  mailboxReads = 0;

  const together = await Promise.all([1, 2, 3, 4].map(() => store.receiversOf('ONCE_TEST')));
  const again = await store.receiversOf('ONCE_TEST');
  for (const answer of [...together, again]) t.deepEqual(answer.map((mailbox) => mailbox.id), ['ONCE1', 'ONCE2', 'ONCE3']);
  t.is(mailboxReads, 3, 'each receiver read once');

  t.true(await store.setActive('ONCE2', false));
  mailboxReads = 0;
  t.deepEqual((await store.receiversOf('ONCE_TEST')).map((mailbox) => mailbox.id), ['ONCE1', 'ONCE3']);
  t.is(mailboxReads, 3, 'read again after the change');
});

test("tracking names the parties of a message whose recipient's record this server cannot decrypt, instead of failing", async (t) => {
  // Its own server: the other tests here list every mailbox, and must not meet this one.
  const own = await startTestServer();
  try {
    const sender = await own.createMailbox({ name: 'Sender', workflows: ['KEY_TRACK'] });
    const recipient = await own.createMailbox({ name: 'Unreadable later', odsCode: 'B99002', workflows: ['KEY_TRACK'] });
    const sendTo = () => sendMessage(own, sender, recipient, 'x', { 'mex-WorkflowID': 'KEY_TRACK' });
    const messageId = await sendTo();
    await new MailboxStore(own.redis, redisKeys(own.redisPrefix), new PasswordCipher('not the server key')).setPassword(recipient.id, recipient.password);
    // Once the server's copy of the mailbox has aged out, it reads the record again.
    await new Promise((done) => setTimeout(done, DEFAULT_MAILBOX_CACHE_MS + 100));
    await t.throwsAsync(sendTo(), { message: /503/ }, 'the record is unreadable now');

    const tracked = await mailboxRequest(own, sender, { path: `/messageexchange/${sender.id}/outbox/tracking?messageID=${messageId}` });
    t.is(tracked.status, 200);
    t.like(tracked.json(), { sender_name: 'Sender', recipient: recipient.id, recipient_name: 'Unreadable later', recipient_ods_code: 'B99002' });
  } finally {
    await own.close();
  }
});

test('the secret key a directory is under is told by most of its passwords, and an empty directory is claimed by a server only', async (t) => {
  // Under the test server's prefix, so its clean-up takes these keys too.
  const prefix = `${server.redisPrefix}keycheck-${Date.now()}:`;
  const keys = redisKeys(prefix);
  const store = (secret: string) => new MailboxStore(server.redis, keys, new PasswordCipher(secret));
  const [right, wrong] = [store('the directory key'), store('a key from the wrong shell')];

  // Empty: an admin command's key is taken as it is, and claims nothing; a server's claims it.
  t.true(await wrong.secretKeyMatches());
  t.is(await server.redis.get(keys.secretKeyCheck), null);

  for (let n = 0; n < 5; n++) await right.create({ id: `KEYOK${n}`, password: 'pw' });
  await wrong.create({ id: 'KEYBAD', password: 'pw' });
  t.false(await wrong.secretKeyMatches(), 'one mailbox made under it does not make it the directory key');
  t.is(await server.redis.get(keys.secretKeyCheck), null);
  t.true(await right.secretKeyMatches({ claimEmpty: true }));
  t.false(await wrong.secretKeyMatches({ claimEmpty: true }), 'the check value kept now decides');

  const fresh = redisKeys(`${prefix}fresh:`);
  t.true(await new MailboxStore(server.redis, fresh, new PasswordCipher('a new deployment key')).secretKeyMatches({ claimEmpty: true }));
  t.false(await new MailboxStore(server.redis, fresh, new PasswordCipher('the dev key')).secretKeyMatches());
});

test('a mailbox profile update moves it to its new ODS code in endpoint lookup; one racing another update lands in one index only, the last code given', async (t) => {
  const moving = await server.createMailbox({ name: 'Moving GP', odsCode: 'C11001', workflows: ['PROFILE_TEST'] });
  const lookup = async (ods: string) =>
    (await rawRequest(server, { path: `/messageexchange/endpointlookup/${ods}/PROFILE_TEST`, clientCertificate: lab, headers: { accept: 'application/vnd.mesh.v2+json' } })).json().results;
  t.deepEqual(await lookup('C11001'), [{ mailbox_id: moving.id, mailbox_name: 'Moving GP' }]);

  // Another admin moves it to C11002 between this update's read and its write.
  const keys = redisKeys(server.redisPrefix);
  const cipher = new PasswordCipher(TEST_SECRET_KEY);
  const other = new MailboxStore(server.redis, keys, cipher);
  let raced = false;
  const evalsha = server.redis.evalsha.bind(server.redis) as (...args: unknown[]) => Promise<unknown>;
  const racing = overriding(server.redis, {
    evalsha: (async (...args: unknown[]) => {
      if (!raced) {
        raced = true;
        t.like(await other.updateProfile(moving.id, { odsCode: 'C11002' }), { outcome: 'updated' });
      }
      return evalsha(...args);
    }) as typeof server.redis.evalsha,
  });
  t.like(await new MailboxStore(racing, keys, cipher).updateProfile(moving.id, { odsCode: 'c11003' }), {
    outcome: 'updated',
    before: { odsCode: 'C11002' },
    after: { odsCode: 'C11003', name: 'Moving GP' },
  });
  t.deepEqual(await lookup('C11001'), []);
  t.deepEqual(await lookup('C11002'), [], 'not left under the code it was moved to meanwhile');
  t.deepEqual(await lookup('C11003'), [{ mailbox_id: moving.id, mailbox_name: 'Moving GP' }]);
  t.is(await server.services.mailboxes.updateProfile('NOSUCH', { name: 'x' }).then((update) => update.outcome), 'not_found');
});
