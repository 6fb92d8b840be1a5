// Races between a request and the lifecycle worker, each forced into one interleaving by pausing
// a step (a gate) or by taking a worker's claim at a chosen moment, against real Redis and S3.
import test from 'ava';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { acknowledgeMessage } from '../../server/src/domain/acknowledge.ts';
import { advanceLifecycle, checkInboxNow } from '../../server/src/domain/lifecycle.ts';
import { sendMessage as sendThroughDomain } from '../../server/src/domain/send.ts';
import type { Services } from '../../server/src/domain/services.ts';
import { uploadChunk } from '../../server/src/domain/upload-chunk.ts';
import { MeshError } from '../../server/src/domain/errors.ts';
import { sendMetadata } from '../../server/src/http/send-headers.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import { SCHEDULE_SHARDS, type Claim } from '../../server/src/store/lifecycle-schedule.ts';
import type { TestMailbox, TestServer } from '../support/harness.ts';
import { LIFECYCLE_TEST_PERIODS, prepareLifecycleSetting, SECOND } from '../support/lifecycle-setting.ts';
import { mailboxRequest, sendMessage } from '../support/http.ts';
import { overriding } from '../support/overriding.ts';

/** Shorter than the payload retention, as production's 5 min lease is shorter than its 1 day retention. */
const LEASE_MS = 2 * 1000;
const periods = LIFECYCLE_TEST_PERIODS;

let server: TestServer;
let lab: TestMailbox;
let gp: TestMailbox;
const { later, inboxOf, objectsOf, nextCheckOf } = prepareLifecycleSetting(test, (setting) => ({ server, lab, gp } = setting));

/** A request's clock, which a stall moves on (the stall itself takes no time in the test). */
function stallingClock(): { readonly now: () => Date; readonly stalledFor: (ms: number) => void } {
  let stalled = 0;
  return { now: () => new Date(Date.now() + stalled), stalledFor: (ms) => (stalled += ms) };
}

/** A promise and the function that settles it: a gate to pause one step of a request. */
function gate(): { readonly wait: Promise<void>; readonly open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait, open };
}

/** Claims the message's check as a worker sweeping at `at` would (other claims of the shard are handed back). */
async function claimAs(messageId: string, at: Date): Promise<Claim> {
  const schedule = server.connections.schedule;
  const claims = await schedule.claimDue(crc32(messageId) % SCHEDULE_SHARDS, at, LEASE_MS, 10_000);
  const mine = claims.find((claim) => claim.messageId === messageId);
  for (const other of claims) if (other !== mine) await schedule.release(other, at);
  if (!mine) throw new Error(`check of ${messageId} not due at ${at.toISOString()}`);
  return mine;
}

/** A send through the domain, returned once its follow-up steps are done too: `unfinished` lists those that failed. */
async function domainSend(services: Services, body: Buffer, headers: Record<string, string> = {}) {
  const { chunk: _chunk, ...metadata } = sendMetadata({ 'mex-to': gp.id, 'mex-workflowid': 'RACE', ...headers });
  const sender = await server.services.mailboxes.get(lab.id);
  const sent = await sendThroughDomain(services, { sender: sender!, metadata, body: { stream: Readable.from([body]), contentLength: body.length, contentEncoding: '' } });
  return { messageId: sent.messageId, unfinished: await sent.followUp };
}

// ---------------------------------------------------------------------------------------------
// a final chunk that loses the race with the upload-expiry abandon is told "already complete".
// The chunk is paused after its object is in S3 and before its record (the store-chunk script):
// from Redis's side, the same interleaving as a PUT finishing after the worker's abandon. (Pausing
// the body instead, so the PUT itself finishes after the abandon's purge, makes s3rver fail the
// PUT with an InternalError, as the purge removed the message's directory: the client gets a 500.)
test.serial('final chunk in flight when the upload is abandoned: refused as abandoned, not as "already complete"', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'first half, ', { 'mex-WorkflowID': 'RACE', 'mex-Chunk-Range': '1:2' });
  const real = server.services.messages;
  const stalled = gate();
  const reached = gate();
  const messages = overriding(real, {
    storeChunk: async (...args: Parameters<typeof real.storeChunk>) => {
      reached.open();
      await stalled.wait;
      return real.storeChunk(...args);
    },
  });
  const rest = Buffer.from('second half');
  const upload = uploadChunk({ ...server.services, messages }, {
    sender: lab.id,
    messageId,
    chunkNumber: 2,
    totalChunks: 2,
    body: { stream: Readable.from([rest]), contentLength: rest.length, contentEncoding: '' },
    repeated: false,
  });
  await reached.wait;
  // The upload deadline passes; a worker abandons the message and purges its chunks.
  await advanceLifecycle(later(periods.uploadExpiryMs + SECOND), messageId);
  t.is((await real.get(messageId))!.status, 'error');
  stalled.open();
  const refusal = await t.throwsAsync(upload, { instanceOf: MeshError });
  t.is(refusal?.status, 423);
  const tracking = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` });
  t.is(tracking.json().status, 'error', 'the message was discarded');
  t.is(await objectsOf(messageId), 0, 'nothing kept');
  // Expected: the abandoned description, as a chunk arriving a moment later gets.
  t.is(refusal?.message, 'Message upload not completed in time; the message was discarded: send it again');
});

// ---------------------------------------------------------------------------------------------
// an acknowledgement landing between the send's delivery and its postpone of the first check.
test.serial('acknowledged between the send\'s delivery and its postpone: the payload purge is still due at ack + retention', async (t) => {
  const real = server.services.messages;
  const messages = overriding(real, {
    deliver: async (id: string, recipient: string) => {
      await real.deliver(id, recipient);
      // A fast recipient: lists, downloads and acknowledges before the send's next command.
      await acknowledgeMessage(server.services, recipient, id);
    },
  });
  const sent = await domainSend({ ...server.services, messages }, Buffer.from('acknowledged at once'));
  t.deepEqual(sent.unfinished, []);
  const record = (await real.get(sent.messageId))!;
  t.is(record.status, 'acknowledged');
  const next = (await nextCheckOf(sent.messageId))!.getTime();
  t.true(next <= record.statusAt.getTime() + periods.payloadRetentionMs + SECOND, 'next check no later than the payload purge the acknowledgement asked for');
});

// an acknowledgement landing while a worker holds the message's check ('wait' step).
test.serial('acknowledged while a worker holds the check of the accepted message: the release keeps the purge time', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'part 1, ', { 'mex-WorkflowID': 'RACE', 'mex-Chunk-Range': '1:2' });
  const second = await mailboxRequest(server, lab, {
    method: 'POST',
    path: `/messageexchange/${lab.id}/outbox/${messageId}/2`,
    headers: { 'mex-Chunk-Range': '2:2' },
    body: 'part 2',
  });
  t.is(second.status, 202);
  // The check set while it was uploading comes due; a worker claims it.
  const claim = await claimAs(messageId, new Date(Date.now() + periods.deliveryCheckMs + SECOND));
  const real = server.services.messages;
  const messages = overriding(real, {
    deliverChecked: async (id: string, recipient: string) => {
      await real.deliverChecked(id, recipient);
      // The recipient acknowledges while the worker's step runs (after it read 'accepted').
      await acknowledgeMessage(server.services, recipient, id);
    },
  });
  const next = await advanceLifecycle({ ...server.services, messages }, messageId);
  await server.connections.schedule.release(claim, next);
  const record = (await real.get(messageId))!;
  t.is(record.status, 'acknowledged');
  const scheduled = (await nextCheckOf(messageId))!.getTime();
  t.true(scheduled <= record.statusAt.getTime() + periods.payloadRetentionMs + SECOND, 'next check no later than the payload purge');
});

/** A message store whose unchecked deliver waits at `stalled` once `reached` (the id it delivers then in `messageId()`). */
function stalledDeliver() {
  const real = server.services.messages;
  const stalled = gate();
  const reached = gate();
  let messageId = '';
  const messages = overriding(real, {
    deliver: async (id: string, recipient: string) => {
      messageId = id;
      reached.open();
      await stalled.wait;
      await real.deliver(id, recipient);
    },
  });
  return { real, messages, stalled, reached, messageId: () => messageId };
}

// ---------------------------------------------------------------------------------------------
// a new single-chunk send's unchecked deliver, stalled, lands after its first check delivered
// it and the recipient acknowledged it.
test.serial('a stalled unchecked deliver of a new send, overtaken by its first check and an acknowledgement, leaves it out of the inbox', async (t) => {
  const { real, messages, stalled, reached, messageId: deliveredId } = stalledDeliver();
  const clock = stallingClock();
  const sending = domainSend({ ...server.services, messages, now: clock.now }, Buffer.from('stalled delivery'));
  await reached.wait;
  const messageId = deliveredId();
  // The first check comes (the worker's sweep), delivers it; the recipient acknowledges it.
  const claim = await claimAs(messageId, new Date(Date.now() + periods.deliveryCheckMs + SECOND));
  await server.connections.schedule.release(claim, await advanceLifecycle(later(periods.deliveryCheckMs + SECOND), messageId));
  t.true((await inboxOf(gp)).includes(messageId));
  const ack = await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` });
  t.is(ack.status, 200);
  t.false((await inboxOf(gp)).includes(messageId));
  // The send's own deliver lands now, past its first check.
  clock.stalledFor(periods.deliveryCheckMs + SECOND);
  stalled.open();
  await sending;
  t.is((await real.get(messageId))!.status, 'acknowledged');
  const listed = (await inboxOf(gp)).includes(messageId);
  if (listed) {
    const download = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` });
    t.log(`listed again after acknowledgement; its download answers ${download.status}`);
  }
  t.false(listed, 'an acknowledged message is not listed again');
});

test.serial('a deliver of a new send landing after its recipient acknowledged it (knowing the id from the sender, through another API process) does not list it again, whatever the clocks of the processes that took messages out of the inbox meanwhile', async (t) => {
  // Another message of the inbox, acknowledged: each check of it takes it out of the inbox again.
  const other = await sendMessage(server, lab, gp, 'other');
  t.is((await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${other}/status/acknowledged` })).status, 200);
  const { real, messages, stalled, reached, messageId: deliveredId } = stalledDeliver();
  const sending = domainSend({ ...server.services, messages }, Buffer.from('acknowledged first'));
  await reached.wait;
  const messageId = deliveredId();
  // Well before its first check: nothing but the acknowledgement has moved it on.
  const ack = await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` });
  t.is(ack.status, 200);
  // Meanwhile a worker whose clock runs 3 minutes ahead (processes may be 5 apart) checks the other.
  const realNow = Date.now;
  Date.now = () => realNow() + 3 * 60_000;
  try {
    await advanceLifecycle(later(3 * 60_000), other);
  } finally {
    Date.now = realNow;
  }
  stalled.open();
  t.deepEqual((await sending).unfinished, []);
  t.is((await real.get(messageId))!.status, 'acknowledged');
  t.false((await inboxOf(gp)).includes(messageId), 'an acknowledged message is not listed again');
  const count = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/count` });
  t.is(count.json().count, (await inboxOf(gp)).length);
  // What left is remembered for minutes, not for good.
  const remembered = await server.redis.pttl(redisKeys(server.redisPrefix).inboxLeft(gp.id));
  t.true(remembered > 0 && remembered <= 2 * 60_000, `kept for ${remembered} ms`);
});

/** The message store as a worker's check reads it: once it has read the record it says so, and goes on at `resume`. */
function readThenWait(afterRead: () => void, resume: Promise<void>) {
  const real = server.services.messages;
  return overriding(real, {
    get: async (id: string) => {
      const found = await real.get(id);
      afterRead();
      await resume;
      return found;
    },
  });
}

/** A send held just before its record is written; `messageId` once it is there. */
function heldBeforeRecord(inlinePayloadBytes: number) {
  const real = server.services.messages;
  const held = gate();
  const reached = gate();
  const clock = stallingClock();
  let messageId = '';
  const messages = overriding(real, {
    create: async (...args: Parameters<typeof real.create>) => {
      messageId = args[0];
      reached.open();
      await held.wait;
      return real.create(...args);
    },
  });
  const services: Services = { ...server.services, messages, now: clock.now, limits: { ...server.services.limits, inlinePayloadBytes } };
  return { services, clock, reached: reached.wait, release: held.open, messageId: () => messageId };
}

// ---------------------------------------------------------------------------------------------
// a small (inline) send whose record lands after its first check found nothing: no check left.
test.serial('a small send recorded after its first check found no record still has a lifecycle check', async (t) => {
  const send = heldBeforeRecord(64 * 1024);
  const sending = domainSend(send.services, Buffer.from('small, recorded late'));
  await send.reached;
  const messageId = send.messageId();
  t.truthy(await nextCheckOf(messageId), 'its first check is scheduled before the record');
  // Its first check comes before the record: a worker finds no record and no reservation.
  const claim = await claimAs(messageId, new Date(Date.now() + periods.deliveryCheckMs + SECOND));
  const next = await advanceLifecycle(later(periods.deliveryCheckMs + SECOND), messageId);
  await server.connections.schedule.release(claim, next);
  t.is(next, undefined, 'the check ended the id\'s life');
  send.clock.stalledFor(periods.deliveryCheckMs + SECOND);
  send.release();
  const sent = await sending;
  t.is(sent.messageId, messageId);
  t.deepEqual(sent.unfinished, []);
  t.is((await server.services.messages.get(messageId))!.status, 'accepted');
  t.true((await inboxOf(gp)).includes(messageId), 'delivered, 202 to the sender');
  // Nothing will ever expire it (no report to the sender), purge its payload (kept in Redis) or its record.
  t.truthy(await nextCheckOf(messageId), 'an accepted message has a next lifecycle check');
});

// ---------------------------------------------------------------------------------------------
// the record of a stalled send lands while a worker holds its first check, after the worker read
// no record and before it released the check.
for (const [kind, inlinePayloadBytes] of [['a small send', 64 * 1024], ['a send stored in S3', 0]] as const) {
  test.serial(`${kind} recorded while a worker checks it and finds no record: still downloadable, with a lifecycle check`, async (t) => {
    const send = heldBeforeRecord(inlinePayloadBytes);
    const body = Buffer.from(`${kind}, recorded during its check`);
    const sending = domainSend(send.services, body);
    await send.reached;
    const messageId = send.messageId();
    const claim = await claimAs(messageId, new Date(Date.now() + periods.deliveryCheckMs + SECOND));
    const workerRead = gate();
    const recorded = gate();
    const checking = advanceLifecycle({ ...later(periods.deliveryCheckMs + SECOND), messages: readThenWait(workerRead.open, recorded.wait) }, messageId);
    await workerRead.wait;
    send.clock.stalledFor(periods.deliveryCheckMs + SECOND);
    send.release();
    const sent = await sending;
    recorded.open();
    await server.connections.schedule.release(claim, await checking);
    t.deepEqual(sent.unfinished, []);
    t.true((await inboxOf(gp)).includes(messageId));
    const download = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` });
    t.is(download.status, 200);
    t.true(download.body.equals(body));
    // Without one, nothing would ever expire it (no report to the sender) or purge it.
    t.truthy(await nextCheckOf(messageId), 'an accepted message has a next lifecycle check');
  });
}

// ---------------------------------------------------------------------------------------------
// a send delivered after its recipient was disabled, and after the disable's scan of the inbox.
test.serial("a send delivered after its recipient's deactivation scanned the inbox brings its own check forward: returned to its sender now, not a payload retention later", async (t) => {
  const send = heldBeforeRecord(64 * 1024);
  const sending = domainSend(send.services, Buffer.from('to a practice that has just closed'));
  await send.reached;
  const messageId = send.messageId();
  t.teardown(() => server.services.mailboxes.setActive(gp.id, true));
  await server.services.mailboxes.setActive(gp.id, false);
  t.false((await checkInboxNow({ messages: server.services.messages, schedule: server.connections.schedule }, gp.id, new Date())).includes(messageId));
  send.release();
  t.deepEqual((await sending).unfinished, []);
  t.true((await nextCheckOf(messageId))!.getTime() <= Date.now(), 'due now');
  await advanceLifecycle(server.services, messageId);
  t.like((await server.services.messages.get(messageId))?.statusDetail, { description: 'Message was not collected as the mailbox is deactivated' });
});

// ---------------------------------------------------------------------------------------------
// a multi-chunk message completed after its recipient was disabled, and after the disable's scan.
test.serial("a message whose last chunk comes after its recipient's deactivation scanned the inbox brings its own check forward: returned to its sender now, not a delivery check later", async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'part 1, ', { 'mex-WorkflowID': 'RACE', 'mex-Chunk-Range': '1:2' });
  t.teardown(() => server.services.mailboxes.setActive(gp.id, true));
  await server.services.mailboxes.setActive(gp.id, false);
  t.false((await checkInboxNow({ messages: server.services.messages, schedule: server.connections.schedule }, gp.id, new Date())).includes(messageId));
  const body = Buffer.from('part 2');
  const last = await mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox/${messageId}/2`, headers: { 'mex-Chunk-Range': '2:2' }, body });
  t.is(last.status, 202);
  await server.settled();
  t.true((await nextCheckOf(messageId))!.getTime() <= Date.now(), 'due now');
  await advanceLifecycle(server.services, messageId);
  t.like((await server.services.messages.get(messageId))?.statusDetail, { description: 'Message was not collected as the mailbox is deactivated' });
});

// ---------------------------------------------------------------------------------------------
// the identical retry of a final chunk (answer lost) once the message was acknowledged.
test.serial('the identical retry of the final chunk after the recipient acknowledged gets its 202 again', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'part 1, ', { 'mex-WorkflowID': 'RACE', 'mex-Chunk-Range': '1:2' });
  const body = Buffer.from('part 2');
  t.is(
    (await mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox/${messageId}/2`, headers: { 'mex-Chunk-Range': '2:2' }, body })).status,
    202,
  );
  t.is((await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` })).status, 200);
  // The sender never saw the 202 and retries with the same token (repeated: true, as the auth middleware marks it).
  const retry = uploadChunk(server.services, {
    sender: lab.id,
    messageId,
    chunkNumber: 2,
    totalChunks: 2,
    body: { stream: Readable.from([body]), contentLength: body.length, contentEncoding: '' },
    repeated: true,
  });
  const outcome = await retry.then(
    () => 202,
    (error: unknown) => (error instanceof MeshError ? `${error.status} ${JSON.stringify(error.message)}` : String(error)),
  );
  t.is(outcome, 202, 'its first try completed the message and was answered 202');
});

for (const acknowledged of [false, true]) {
  test.serial(`of two uploads of one chunk, the one begun later is kept even when the earlier one is recorded last${acknowledged ? ', after the recipient acknowledged the message' : ''}: the earlier is answered 202, its copy deleted, nothing delivered again`, async (t) => {
    const messageId = await sendMessage(server, lab, gp, 'part 1, ', { 'mex-WorkflowID': 'RACE', 'mex-Chunk-Range': '1:2' });
    const chunk2 = (text: string) => ({ stream: Readable.from([Buffer.from(text)]), contentLength: text.length, contentEncoding: '' });
    const real = server.services.messages;
    const deliveries: string[] = [];
    // The first upload is stored, then stalls before it is recorded; its retry is recorded meanwhile and completes the message.
    const messages = overriding(real, {
      storeChunk: async (...args: Parameters<typeof real.storeChunk>) => {
        const retried = await mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox/${messageId}/2`, headers: { 'mex-Chunk-Range': '2:2' }, body: 'part 2 again' });
        t.is(retried.status, 202);
        await server.settled(); // its delivery, after its answer
        if (acknowledged) {
          t.is((await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` })).status, 200);
        }
        return real.storeChunk(...args);
      },
      deliverChecked: async (...args: Parameters<typeof real.deliverChecked>) => {
        deliveries.push(args[0]);
        return real.deliverChecked(...args);
      },
    });
    t.deepEqual(await uploadChunk({ ...server.services, messages }, { sender: lab.id, messageId, chunkNumber: 2, totalChunks: 2, body: chunk2('part 2, first try'), repeated: false }), []);
    await server.settled();
    t.deepEqual(deliveries, [], 'the retry delivered it; the first try does not');
    t.is((await inboxOf(gp)).includes(messageId), !acknowledged);
    if (!acknowledged) {
      const downloaded = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}/2` });
      t.is(downloaded.status, 200);
      t.is(downloaded.body.toString(), 'part 2 again');
    }
    t.is(await objectsOf(messageId), 2, "chunk 1's object and the retry's, not the stalled upload's");
  });
}

// ---------------------------------------------------------------------------------------------
// an abandoned upload whose chunk deletion failed once keeps its chunks for the payload retention.
test.serial('an abandoned upload whose purge failed once has its chunks deleted at the retry, not a retention later', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'never finished', { 'mex-WorkflowID': 'RACE', 'mex-Chunk-Range': '1:2' });
  let failures = 0;
  const payloads = overriding(server.services.payloads, {
    deleteMessage: async () => {
      failures++;
      throw new Error('S3 away for a moment');
    },
  });
  const expiredAt = periods.uploadExpiryMs + SECOND;
  await t.throwsAsync(advanceLifecycle({ ...later(expiredAt), payloads }, messageId));
  t.is(failures, 1);
  t.is((await server.services.messages.get(messageId))!.status, 'error');
  // The worker retries (backoff of a second or so): S3 is back.
  const next = await advanceLifecycle(later(expiredAt + 2 * SECOND), messageId);
  t.log(`objects after the retry: ${await objectsOf(messageId)}; next check in ${Math.round((next!.getTime() - Date.now()) / 1000)} s`);
  t.is(await objectsOf(messageId), 0, 'chunks of an abandoned upload are deleted at once (api.md)');
});
