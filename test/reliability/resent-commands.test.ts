// A Redis command whose answer was lost with its connection is sent again by ioredis: what it
// wrote (a send's record, a chunk's, a token's claim) is then found by its second run.
import test from 'ava';
import type { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { ensureLocalServices } from '../../scripts/services/index.ts';
import { waitFor } from '../../scripts/services/processes.ts';
import { sendMessage as sendThroughDomain } from '../../server/src/domain/send.ts';
import { uploadChunk } from '../../server/src/domain/upload-chunk.ts';
import { sendMetadata } from '../../server/src/http/send-headers.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import { UsedTokenStore } from '../../server/src/store/used-tokens.ts';
import { MailboxStore } from '../../server/src/store/mailboxes.ts';
import { MessageStore } from '../../server/src/store/messages.ts';
import { PasswordCipher } from '../../server/src/store/password-cipher.ts';
import { openRedis } from '../../server/src/store/redis-client.ts';
import { buildAuthorizationHeader } from '../../shared/src/protocol/index.ts';
import { mailboxRequest, sendMessage } from '../support/http.ts';
import { startTestServer, TEST_SECRET_KEY, type TestMailbox, type TestServer } from '../support/harness.ts';
import { overriding } from '../support/overriding.ts';
import { startTcpProxy } from '../support/tcp-proxy.ts';

let server: TestServer;
let lab: TestMailbox;

test.before(async () => {
  server = await startTestServer({ worker: false });
  lab = await server.createMailbox();
});

test.after.always(async () => {
  await server?.close();
});

/** The Redis client, but each `command` runs twice, as ioredis sends one again when its connection broke before the answer came; the caller gets the second run's answer. */
function runningTwice(redis: Redis, command: 'set' | 'evalsha'): Redis {
  const run = (redis[command] as (...args: unknown[]) => Promise<unknown>).bind(redis);
  const twice = async (...args: unknown[]): Promise<unknown> => {
    await run(...args);
    return run(...args);
  };
  return overriding(redis, { [command]: twice } as Partial<Redis>);
}

/** The Redis client, but the first script run on a message id's reservation (the send's claim of its id) runs twice, as `runningTwice`. */
function reservingTwiceOnce(redis: Redis): Redis {
  const run = redis.evalsha.bind(redis) as (...args: unknown[]) => Promise<unknown>;
  let resent = false;
  const once = async (...args: unknown[]): Promise<unknown> => {
    if (resent || !args.some((arg) => typeof arg === 'string' && arg.includes('message-id-reservation:'))) return run(...args);
    resent = true;
    await run(...args);
    return run(...args);
  };
  return overriding(redis, { evalsha: once } as Partial<Redis>);
}

/** The message store as ioredis behaves when its connection breaks once: the first record is written, and its answer is "it exists". */
function createAnsweredTwice() {
  const real = server.services.messages;
  const created: string[] = [];
  const messages = overriding(real, {
    create: async (...args: Parameters<typeof real.create>) => {
      const outcome = await real.create(...args);
      created.push(args[0]);
      return created.length === 1 && (outcome === 'accepted' || outcome === 'uploading') ? 'exists' : outcome;
    },
  });
  return { services: { ...server.services, messages }, created };
}

for (const [kind, bytes] of [['a small message, kept with its record', 100], ['a message in object storage', 100_000]] as const) {
  test(`${kind}: a record-creating command run twice records one message, under the id the send answers`, async (t) => {
    const gp = await server.createMailbox();
    const { services, created } = createAnsweredTwice();
    const { chunk: _chunk, ...metadata } = sendMetadata({ 'mex-to': gp.id, 'mex-workflowid': 'RESENT', 'mex-localid': `resent-${bytes}` });
    const body = Buffer.alloc(bytes, 'r');
    const sender = (await server.services.mailboxes.get(lab.id))!;
    const { messageId, followUp } = await sendThroughDomain(services, { sender, metadata, body: { stream: Readable.from([body]), contentLength: body.length, contentEncoding: '' } });
    t.deepEqual(await followUp, []);
    t.deepEqual(created, [messageId], 'one record, the one answered');
    t.deepEqual((await server.services.messages.inboxPage(gp.id, 10, undefined)).messageIds, [messageId]);
  });
}

test('a send whose record was written but whose answer from Redis was lost (503) keeps its token: its identical retry is told the message, not sent again', async (t) => {
  let firstRecord: string | undefined;
  const failing = await startTestServer({
    worker: false,
    appServices: (services) => {
      const real = services.messages;
      const messages = overriding(real, {
        create: async (...args: Parameters<typeof real.create>) => {
          const outcome = await real.create(...args);
          if (firstRecord !== undefined) return outcome;
          firstRecord = args[0];
          throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
        },
      });
      return { ...services, messages };
    },
  });
  try {
    const [sender, recipient] = [await failing.createMailbox(), await failing.createMailbox()];
    const authorization = buildAuthorizationHeader({ mailboxId: sender.id, password: sender.password, sharedKey: failing.sharedKey });
    const send = () =>
      mailboxRequest(failing, sender, { method: 'POST', path: `/messageexchange/${sender.id}/outbox`, authorization, headers: { 'mex-To': recipient.id, 'mex-WorkflowID': 'LOST_REPLY' }, body: 'once' });
    const first = await send();
    t.is(first.status, 503);
    // The token's fate is settled once the first request's connection is done with it.
    let retried = first;
    for (let attempt = 0; attempt < 50 && retried.status === 503; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      retried = await send();
    }
    t.is(retried.status, 202);
    // The first try stopped before delivering: its lifecycle check delivers it. A second message would be a duplicate.
    t.is(retried.json().message_id, firstRecord, 'the message the first try recorded');
    t.deepEqual((await failing.services.messages.inboxPage(recipient.id, 10, undefined)).messageIds, [], 'no second message delivered');
  } finally {
    await failing.close();
  }
});

for (const [which, totalChunks] of [['a middle chunk', 3], ['the final chunk', 2]] as const) {
  test(`${which} whose store-chunk command runs twice is recorded once, and the message downloads whole`, async (t) => {
    const gp = await server.createMailbox();
    const messageId = await sendMessage(server, lab, gp, 'part 1, ', { 'mex-WorkflowID': 'RESENT', 'mex-Chunk-Range': `1:${totalChunks}` });
    const real = server.services.messages;
    const messages = overriding(real, {
      storeChunk: async (...args: Parameters<typeof real.storeChunk>) => {
        await real.storeChunk(...args);
        return real.storeChunk(...args);
      },
    });
    const body = Buffer.from('part 2, ');
    const unfinished = await uploadChunk(
      { ...server.services, messages },
      { sender: lab.id, messageId, chunkNumber: 2, totalChunks, body: { stream: Readable.from([body]), contentLength: body.length, contentEncoding: '' }, repeated: false },
    );
    t.deepEqual(unfinished, []);
    if (totalChunks === 3) {
      const last = await mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox/${messageId}/3`, headers: { 'mex-Chunk-Range': '3:3' }, body: 'part 3' });
      t.is(last.status, 202);
    }
    t.deepEqual((await server.services.messages.inboxPage(gp.id, 10, undefined)).messageIds, [messageId]);
    const chunk2 = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}/2` });
    t.is(chunk2.status, totalChunks === 2 ? 200 : 206);
    t.true(chunk2.body.equals(body));
  });
}

test('a chunk whose store-chunk command runs again after another upload of that chunk replaced it keeps the other upload\'s copy', async (t) => {
  const gp = await server.createMailbox();
  const messageId = await sendMessage(server, lab, gp, 'part 1, ', { 'mex-WorkflowID': 'RESENT', 'mex-Chunk-Range': '1:3' });
  const real = server.services.messages;
  const chunk2 = (text: string) => ({ stream: Readable.from([Buffer.from(text)]), contentLength: text.length, contentEncoding: '' });
  // The first upload's command is recorded, its answer lost; a retry of the upload (its client
  // gave up waiting) is stored meanwhile; then ioredis sends the first upload's command again.
  const messages = overriding(real, {
    storeChunk: async (...args: Parameters<typeof real.storeChunk>) => {
      await real.storeChunk(...args);
      const retried = await uploadChunk(server.services, { sender: lab.id, messageId, chunkNumber: 2, totalChunks: 3, body: chunk2('part 2, '), repeated: false });
      t.deepEqual(retried, []);
      return real.storeChunk(...args);
    },
  });
  t.deepEqual(await uploadChunk({ ...server.services, messages }, { sender: lab.id, messageId, chunkNumber: 2, totalChunks: 3, body: chunk2('part 2, '), repeated: false }), []);
  const last = await mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox/${messageId}/3`, headers: { 'mex-Chunk-Range': '3:3' }, body: 'part 3' });
  t.is(last.status, 202);
  const downloaded = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}/2` });
  t.is(downloaded.status, 206, downloaded.body.toString());
  t.is(downloaded.body.toString(), 'part 2, ');
});

test("a send whose token claim runs twice is sent, not taken for its token's earlier use", async (t) => {
  const redisPrefix = `test:${randomUUID()}:`;
  const twice = await startTestServer({
    worker: false,
    redisPrefix,
    appServices: (services) => {
      return { ...services, usedTokens: new UsedTokenStore(runningTwice(server.redis, 'set'), redisKeys(redisPrefix)) };
    },
  });
  try {
    const [sender, recipient] = [await twice.createMailbox(), await twice.createMailbox()];
    const authorization = buildAuthorizationHeader({ mailboxId: sender.id, password: sender.password, sharedKey: twice.sharedKey });
    const send = (body: string) =>
      mailboxRequest(twice, sender, { method: 'POST', path: `/messageexchange/${sender.id}/outbox`, authorization, headers: { 'mex-To': recipient.id, 'mex-WorkflowID': 'RESENT' }, body });
    const sent = await send('once');
    t.is(sent.status, 202, sent.body.toString());
    const messageId = sent.json().message_id;
    t.deepEqual((await twice.services.messages.inboxPage(recipient.id, 10, undefined)).messageIds, [messageId]);
    // The claim stands for what it was for: its repeat is told the message, other content is refused.
    t.is((await send('once')).json().message_id, messageId);
    t.is((await send('other')).status, 403);
  } finally {
    await twice.close();
  }
});

test("a send whose id reservation runs twice goes under the id its token names: its identical retry, its answer lost, is told that message", async (t) => {
  const redisPrefix = `test:${randomUUID()}:`;
  const twice = await startTestServer({
    worker: false,
    redisPrefix,
    appServices: (services) => ({ ...services, messages: new MessageStore(reservingTwiceOnce(server.redis), redisKeys(redisPrefix)) }),
  });
  try {
    const [sender, recipient] = [await twice.createMailbox(), await twice.createMailbox()];
    const authorization = buildAuthorizationHeader({ mailboxId: sender.id, password: sender.password, sharedKey: twice.sharedKey });
    // Past the inline limit: stored in object storage, under an id reserved first.
    const body = Buffer.alloc(100_000, 'r');
    const send = () =>
      mailboxRequest(twice, sender, { method: 'POST', path: `/messageexchange/${sender.id}/outbox`, authorization, headers: { 'mex-To': recipient.id, 'mex-WorkflowID': 'RESENT' }, body });
    const sent = await send();
    t.is(sent.status, 202, sent.body.toString());
    const messageId = sent.json().message_id;
    await twice.settled();
    t.deepEqual((await twice.services.messages.inboxPage(recipient.id, 10, undefined)).messageIds, [messageId]);
    const retried = await send();
    t.is(retried.status, 202, retried.body.toString());
    t.is(retried.json().message_id, messageId);
  } finally {
    await twice.close();
  }
});

test('a mailbox whose creating command runs twice is created, not taken for another of its id; a second creation of the id is refused', async (t) => {
  const mailboxes = new MailboxStore(runningTwice(server.redis, 'evalsha'), redisKeys(server.redisPrefix), new PasswordCipher(TEST_SECRET_KEY));
  const id = `RESENT${randomUUID().slice(0, 8).toUpperCase()}`;
  t.true(await mailboxes.create({ id, password: 'first' }));
  t.false(await mailboxes.create({ id, password: 'first' }), 'the same id again, by another call');
  t.is((await server.services.mailboxes.get(id, { fresh: true }))?.password, 'first');
});

test('a mailbox profile update whose command runs twice is reported as the change it made, not as nothing changed', async (t) => {
  const mailbox = await server.createMailbox({ name: 'Before', odsCode: 'R1' });
  const mailboxes = new MailboxStore(runningTwice(server.redis, 'evalsha'), redisKeys(server.redisPrefix), new PasswordCipher(TEST_SECRET_KEY));
  t.like(await mailboxes.updateProfile(mailbox.id, { name: 'After', odsCode: 'R2' }), {
    outcome: 'updated',
    before: { id: mailbox.id, name: 'Before', odsCode: 'R1' },
    after: { id: mailbox.id, name: 'After', odsCode: 'R2' },
  });
});

test('a new message delivered again on a new connection, after the recipient listed and acknowledged it, is not listed again', async (t) => {
  const proxy = await startTcpProxy(Number(new URL((await ensureLocalServices()).redisUrl).port));
  // An API process's Redis client, here waiting out a break however long the test makes it.
  const redis = openRedis({ redisUrl: `redis://127.0.0.1:${proxy.port}`, redisCluster: false }, { maxRetriesPerRequest: null });
  redis.on('error', () => {});
  t.teardown(async () => {
    redis.disconnect();
    await proxy.close();
  });
  await redis.ping();
  const messages = new MessageStore(redis, redisKeys(server.redisPrefix));
  const gp = await server.createMailbox();
  // Listed by its send's delivery, as the first run of the delivery below would have listed it.
  const messageId = await sendMessage(server, lab, gp, 'listed once');

  proxy.holdAnswers();
  const sentBefore = proxy.bytesToBackend();
  const delivering = messages.deliver(messageId, gp.id);
  t.true(await waitFor(async () => proxy.bytesToBackend() > sentBefore, 10_000, 10), 'the delivery reached Redis');
  await proxy.cut(); // its answer is lost with the connection
  proxy.releaseAnswers();
  // Meanwhile the recipient, through another API process, lists the message and acknowledges it.
  t.deepEqual((await server.services.messages.inboxPage(gp.id, 10, undefined)).messageIds, [messageId]);
  const ack = await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` });
  t.is(ack.status, 200);
  await proxy.restore(); // ioredis connects again and sends the unanswered delivery again
  await delivering;

  t.deepEqual((await server.services.messages.inboxPage(gp.id, 10, undefined)).messageIds, []);
  t.is((await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox` })).json().messages.length, 0);
});
