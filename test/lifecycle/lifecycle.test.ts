import test from 'ava';
import { DeleteObjectsCommand } from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { DEFAULT_PERIODS } from '../../server/src/config.ts';
import { acknowledgeMessage } from '../../server/src/domain/acknowledge.ts';
import { advanceLifecycle } from '../../server/src/domain/lifecycle.ts';
import { trimAuditLog } from '../../server/src/jobs/lifecycle-worker.ts';
import { sendMessage as sendThroughDomain } from '../../server/src/domain/send.ts';
import { sendMetadata } from '../../server/src/http/send-headers.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import { MailboxStore } from '../../server/src/store/mailboxes.ts';
import { PasswordCipher } from '../../server/src/store/password-cipher.ts';
import { PayloadStore } from '../../server/src/store/payloads.ts';
import { AUDIT_SHARDS } from '../../server/src/store/audit-log.ts';
import { type Claim, LifecycleSchedule, SCHEDULE_SHARDS } from '../../server/src/store/lifecycle-schedule.ts';
import { MeshErrorCodes, newMessageId } from '../../shared/src/protocol/index.ts';
import type { Services } from '../../server/src/domain/services.ts';
import { uploadChunk } from '../../server/src/domain/upload-chunk.ts';
import { MeshError } from '../../server/src/domain/errors.ts';
import type { MessageRecord, MessageStore } from '../../server/src/store/messages.ts';
import { startTestServer, type TestMailbox, type TestServer } from '../support/harness.ts';
import { LIFECYCLE_TEST_PERIODS, prepareLifecycleSetting, SECOND } from '../support/lifecycle-setting.ts';
import { overriding } from '../support/overriding.ts';
import { mailboxRequest, readText, sendMessage, streamingRequest } from '../support/http.ts';

const periods = LIFECYCLE_TEST_PERIODS;

let server: TestServer;
let lab: TestMailbox;
let gp: TestMailbox;
const { later, inboxOf, objectsOf, nextCheckOf } = prepareLifecycleSetting(test, (setting) => ({ server, lab, gp } = setting));

/** The message store, except that its first read of a message answers a record read earlier (a race lost). */
function staleFirst(stale: MessageRecord): MessageStore {
  const messages = server.services.messages;
  let reads = 0;
  return overriding(messages, { get: async (id: string) => (reads++ === 0 ? stale : messages.get(id)) });
}

/** Chunk 1 of a message of two from lab to gp: the id of the message, now uploading. */
function startTwoChunkMessage(workflowId: string, firstChunk: Buffer | string): Promise<string> {
  return sendMessage(server, lab, gp, firstChunk, { 'mex-WorkflowID': workflowId, 'mex-Chunk-Range': '1:2' });
}

test('before the expiry period nothing happens; the message is looked at again a payload retention on, and last at acceptance + expiry', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'not yet');
  const before = Date.now();
  const next = await advanceLifecycle(later(0), messageId);
  t.true(next!.getTime() >= before + periods.payloadRetentionMs && next!.getTime() <= Date.now() + periods.payloadRetentionMs);
  const accepted = (await server.services.messages.get(messageId))!.acceptedAt!;
  const lastWait = await advanceLifecycle(later(periods.inboxExpiryMs - periods.payloadRetentionMs / 2), messageId);
  t.is(lastWait?.getTime(), accepted.getTime() + periods.inboxExpiryMs);
  t.true((await inboxOf(gp)).includes(messageId));
});

test('an unacknowledged message expires: 410 for the recipient, a non-delivery report for the sender, once however often the job runs', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'never collected', { 'mex-LocalID': 'lab-ref-1', 'mex-Subject': 'FBC' });
  const expired = later(periods.inboxExpiryMs + SECOND);
  await Promise.all([advanceLifecycle(expired, messageId), advanceLifecycle(expired, messageId)]);
  await advanceLifecycle(expired, messageId);

  t.false((await inboxOf(gp)).includes(messageId));
  t.is((await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` })).status, 410);

  const tracking = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` });
  t.like(tracking.json(), { status: 'undeliverable', status_code: '14', status_event: 'SEND', status_success: false });
  const v1 = (await mailboxRequest(server, lab, { accept: 'v1', path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` })).json();
  t.regex(v1.failureDate, /^\d{14}$/, 'v1 tracking dates the failure');
  t.regex(v1.failureDiagnostic, /not collected by recipient after 60 seconds/);

  const reports: string[] = [];
  for (const id of await inboxOf(lab)) {
    const head = await mailboxRequest(server, lab, { method: 'HEAD', path: `/messageexchange/${lab.id}/inbox/${id}` });
    if (head.headers['mex-linkedmsgid'] === messageId) reports.push(id);
  }
  t.is(reports.length, 1, 'exactly one report');
  const report = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/inbox/${reports[0]}` });
  t.is(report.status, 200);
  t.is(report.body.length, 0);
  t.like(report.headers, {
    'mex-messagetype': 'REPORT',
    'mex-statuscode': '14',
    'mex-statusevent': 'SEND',
    'mex-statussuccess': 'ERROR',
    'mex-linkedmsgid': messageId,
    'mex-localid': 'lab-ref-1',
    'mex-subject': 'FBC',
    'mex-chunk-range': '1:0',
    'mex-to': lab.id,
  });
  t.is(report.headers['mex-from'], undefined);
  t.regex(String(report.headers['mex-statusdescription']), /not collected by recipient after 60 seconds/);
  const ack = await mailboxRequest(server, lab, { method: 'PUT', path: `/messageexchange/${lab.id}/inbox/${reports[0]}/status/acknowledged` });
  t.is(ack.status, 200);
});

test("a message to a mailbox stored under another secret key still expires with its report: the check reads only whether the recipient is active", async (t) => {
  const unreadable = await server.createMailbox();
  const messageId = await sendMessage(server, lab, unreadable, 'for a mailbox the server cannot read');
  // Its password encrypted under another key, as a directory shared by two deployments would have it.
  t.true(await new MailboxStore(server.redis, redisKeys(server.redisPrefix), new PasswordCipher('another secret key')).setPassword(unreadable.id, 'password'));
  t.is(await advanceLifecycle(later(periods.inboxExpiryMs + SECOND), messageId).then(() => 'checked'), 'checked');
  t.is((await server.services.messages.get(messageId))?.status, 'undeliverable');
});

test('after acknowledgement the payload is purged once the retention passes, and downloadable until then; tracking answers until the record is purged', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'collected');
  await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` });
  t.is(await objectsOf(messageId), 1);
  const download = () => mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` });
  // As MESH serves it: a client may acknowledge before it has read every chunk.
  t.is((await download()).body.toString(), 'collected', 'acknowledged, its payload still kept');

  // Timed from the acknowledgement itself, not from now: a slow machine must not make "before" late.
  const acknowledgedAt = (await server.services.messages.get(messageId))!.statusAt.getTime();
  const justBefore = { ...server.services, now: () => new Date(acknowledgedAt + periods.payloadRetentionMs - SECOND) };
  await advanceLifecycle(justBefore, messageId);
  t.is(await objectsOf(messageId), 1, 'kept during the retention period');

  const next = await advanceLifecycle(later(periods.payloadRetentionMs + SECOND), messageId);
  t.is(await objectsOf(messageId), 0);
  t.truthy(next, 'the record itself is still kept');
  t.is((await download()).status, 410, 'its payload purged');
  const tracked = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` });
  t.is(tracked.json().status, 'acknowledged');

  t.is(await advanceLifecycle(later(periods.messageRetentionMs + SECOND), messageId), undefined);
  const purged = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` });
  t.is(purged.status, 404);
});

test('a purge whose objects object storage did not delete (a 200 listing them as errors) is not taken for done: the check fails, and its retry purges', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'to be purged');
  await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` });
  const { s3 } = server.connections;
  const refusing = overriding(s3, {
    send: (async (command: { input: unknown }) => {
      if (!(command instanceof DeleteObjectsCommand)) return s3.send(command as never);
      const { Delete } = command.input as { Delete: { Objects: { Key: string }[] } };
      return { Errors: Delete.Objects.map(({ Key }) => ({ Key, Code: 'InternalError', Message: 'We encountered an internal error. Please try again.' })) };
    }) as typeof s3.send,
  });
  const afterRetention = later(periods.payloadRetentionMs + SECOND);
  await t.throwsAsync(advanceLifecycle({ ...afterRetention, payloads: new PayloadStore(refusing, server.bucket) }, messageId), { message: /did not delete 1 of 1 objects .*InternalError/ });
  t.is(await objectsOf(messageId), 1);
  t.is((await server.services.messages.get(messageId))?.payloadPurgedAt, undefined, 'not marked purged');
  await advanceLifecycle(afterRetention, messageId);
  t.is(await objectsOf(messageId), 0);
  t.truthy((await server.services.messages.get(messageId))?.payloadPurgedAt);
});

test("a check that succeeds after failing forgets its failure in the step that releases it: a connection lost just after leaves nothing counted failing", async (t) => {
  // A server of its own without a worker: its schedule holds only what this test puts there.
  const idle = await startTestServer({ worker: false });
  t.teardown(() => idle.close());
  const { schedule, redis } = idle.connections;
  const claimEverything = async (): Promise<Claim[]> =>
    (await Promise.all(Array.from({ length: SCHEDULE_SHARDS }, (_, shard) => schedule.claimDue(shard, new Date(), 60_000, 10)))).flat();
  const messageId = newMessageId();
  await schedule.start(messageId, new Date());
  const [failed] = await claimEverything();
  await schedule.releaseFailed(failed!, 'S3 unreachable (test)', new Date(), () => 0);
  t.like(await schedule.counts(new Date()), { scheduled: 1, failing: 1 });

  // Its last check succeeds; the connection breaks as soon as the release's first command is answered.
  let broken = false;
  const breaking = new Proxy(redis, {
    get: (target, property) => {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (broken) return Promise.reject(new Error('Connection is closed.'));
        const answer = (value as (...args: unknown[]) => unknown).apply(target, args);
        void Promise.resolve(answer).then(() => (broken = true), () => undefined);
        return answer;
      };
    },
  });
  const [last] = await claimEverything();
  t.is(last?.messageId, messageId);
  await new LifecycleSchedule(breaking, redisKeys(idle.redisPrefix)).release(last!, undefined).catch(() => undefined);
  t.like(await schedule.counts(new Date()), { scheduled: 0, failing: 0 });
  t.deepEqual(await schedule.failures(10), []);
});

test("a worker whose lease another has taken reports late: its failure is not recorded against a message the other ended, nor its success taken for the other's", async (t) => {
  const idle = await startTestServer({ worker: false });
  t.teardown(() => idle.close());
  const { schedule } = idle.connections;
  const claimAll = async (at: Date, leaseMs: number): Promise<Claim[]> =>
    (await Promise.all(Array.from({ length: SCHEDULE_SHARDS }, (_, shard) => schedule.claimDue(shard, at, leaseMs, 10)))).flat();
  const now = Date.now();
  const [ended, failing] = [newMessageId(), newMessageId()];
  await Promise.all([schedule.start(ended, new Date(now)), schedule.start(failing, new Date(now))]);
  // Worker A claims both with a lease of a second; worker B takes them once it has run out.
  const slow = await claimAll(new Date(now), 1_000);
  const fast = await claimAll(new Date(now + 2_000), 60_000);
  const claim = (claims: Claim[], id: string): Claim => claims.find((each) => each.messageId === id)!;
  // B: the one's last check done, the other's failed.
  await schedule.release(claim(fast, ended), undefined);
  await schedule.releaseFailed(claim(fast, failing), 'S3 unreachable (B)', new Date(now + 2_000), () => 60_000);
  // A, late: fails the first, succeeds with the second.
  await schedule.releaseFailed(claim(slow, ended), 'S3 timed out (A, late)', new Date(now + 3_000), () => 1_000);
  await schedule.release(claim(slow, failing), new Date(now + 86_400_000));
  t.deepEqual((await schedule.failures(10)).map(({ messageId, reason }) => ({ messageId, reason })), [{ messageId: failing, reason: 'S3 unreachable (B)' }]);
  t.like(await schedule.counts(new Date(now)), { scheduled: 1, failing: 1 });
});

test('a small message kept in Redis has its payload purged there too', async (t) => {
  const inline = await startTestServer({ periods, worker: false });
  try {
    const [sender, recipient] = [await inline.createMailbox(), await inline.createMailbox()];
    const messageId = await sendMessage(inline, sender, recipient, 'small');
    t.true((await inline.services.messages.get(messageId))!.inlinePayload);
    t.is((await inline.services.messages.chunkSource(messageId, 1)).inlinePayload?.toString(), 'small');
    await mailboxRequest(inline, recipient, { method: 'PUT', path: `/messageexchange/${recipient.id}/inbox/${messageId}/status/acknowledged` });
    await advanceLifecycle({ ...inline.services, now: () => new Date(Date.now() + periods.payloadRetentionMs + SECOND) }, messageId);
    t.is((await inline.services.messages.chunkSource(messageId, 1)).inlinePayload, undefined);
  } finally {
    await inline.close();
  }
});

test('an abandoned upload expires, its chunks are deleted, and it never reaches the inbox', async (t) => {
  const messageId = await startTwoChunkMessage('W', 'first half');
  t.is(await objectsOf(messageId), 1);

  await advanceLifecycle(later(periods.uploadExpiryMs + SECOND), messageId);
  t.is(await objectsOf(messageId), 0);
  const tracking = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` });
  t.is(tracking.json().status, 'error');
  const late = await mailboxRequest(server, lab, {
    method: 'POST',
    path: `/messageexchange/${lab.id}/outbox/${messageId}/2`,
    headers: { 'mex-Chunk-Range': '2:2' },
    body: 'second half',
  });
  t.is(late.status, 423);
  t.is(late.json().detail[0].msg, 'Message upload not completed in time; the message was discarded: send it again', 'not "already complete"');
  t.false((await inboxOf(gp)).includes(messageId));
});

test('the worker runs lifecycle jobs for real: an expired message produces its report without anyone calling it', async (t) => {
  const quick = await startTestServer({ periods: { ...periods, inboxExpiryMs: 1500, uploadExpiryMs: 500 } });
  try {
    const sender = await quick.createMailbox();
    const recipient = await quick.createMailbox();
    const messageId = await sendMessage(quick, sender, recipient, 'ignored');
    let status = '';
    for (let attempt = 0; attempt < 100 && status !== 'undeliverable'; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const tracking = await mailboxRequest(quick, sender, { path: `/messageexchange/${sender.id}/outbox/tracking?messageID=${messageId}` });
      status = tracking.json().status;
    }
    t.is(status, 'undeliverable');
    const senderInbox = await mailboxRequest(quick, sender, { path: `/messageexchange/${sender.id}/inbox` });
    t.is(senderInbox.json().messages.length, 1);
  } finally {
    await quick.close();
  }
});

test('a small message whose body arrives slowly, past the upload expiry, still expires with its report: its first check waits for the request to end', async (t) => {
  const quick = await startTestServer({ periods: { ...periods, uploadExpiryMs: 300, inboxExpiryMs: 2 * SECOND, deliveryCheckMs: 4 * SECOND } });
  try {
    const sender = await quick.createMailbox();
    const recipient = await quick.createMailbox();
    const slowBody = Readable.from(
      (async function* () {
        yield Buffer.from('half of it, ');
        // Longer than the upload expiry: a check due then would find no record yet.
        await new Promise((resolve) => setTimeout(resolve, 1500));
        yield Buffer.from('the rest');
      })(),
    );
    const response = await streamingRequest(quick, sender, {
      method: 'POST',
      path: `/messageexchange/${sender.id}/outbox`,
      headers: { 'mex-To': recipient.id, 'mex-WorkflowID': 'SLOW', 'content-length': '20' },
      body: slowBody,
    });
    const answer = await readText(response);
    t.is(response.statusCode, 202, answer);
    const messageId = (JSON.parse(answer) as { message_id: string }).message_id;
    let status = '';
    for (let attempt = 0; attempt < 75 && status !== 'undeliverable'; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const tracking = await mailboxRequest(quick, sender, { path: `/messageexchange/${sender.id}/outbox/tracking?messageID=${messageId}` });
      status = tracking.json().status;
    }
    t.is(status, 'undeliverable', 'expired, so its sender is told and its payload and record go in time');
  } finally {
    await quick.close();
  }
});

test('a message from a mailbox deactivated (or gone) since expires without a report: nobody could collect one, and it would wait a whole inbox expiry in an inbox nobody reads', async (t) => {
  const [deactivated, gone, recipient] = [await server.createMailbox(), await server.createMailbox(), await server.createMailbox()];
  const fromDeactivated = await sendMessage(server, deactivated, recipient, 'from a mailbox about to close');
  const fromGone = await sendMessage(server, gone, recipient, 'from a mailbox about to go');
  await server.services.mailboxes.setActive(deactivated.id, false);
  await server.redis.del(redisKeys(server.redisPrefix).mailbox(gone.id), redisKeys(server.redisPrefix).inboxSequence(gone.id));
  for (const messageId of [fromDeactivated, fromGone]) {
    await advanceLifecycle(later(periods.inboxExpiryMs + SECOND), messageId);
    t.like(await server.services.messages.get(messageId), { status: 'undeliverable', reportId: '' });
  }
  await server.services.mailboxes.setActive(deactivated.id, true);
  t.deepEqual(await inboxOf(deactivated), [], 'no report waits for the mailbox deactivated then');
  const keys = redisKeys(server.redisPrefix);
  t.is(await server.redis.exists(keys.inbox(gone.id), keys.inboxSequence(gone.id)), 0, 'no inbox made for the mailbox gone');
});

test("a report delivered to a sender deactivated since its expiry's first step goes back at once: the deactivation's scans of the inbox may have come before it", async (t) => {
  const [sender, recipient] = [await server.createMailbox(), await server.createMailbox()];
  const messageId = await sendMessage(server, sender, recipient, 'never collected');
  // The expiry's first step finds the sender active and reserves the report's id; the worker stops before the report is delivered.
  const stopped = overriding(server.services.messages, { finishExpiry: async () => Promise.reject(new Error('stopped')) });
  await t.throwsAsync(advanceLifecycle({ ...later(periods.inboxExpiryMs + SECOND), messages: stopped }, messageId), { message: 'stopped' });
  const { reportId } = (await server.services.messages.get(messageId))!;
  t.truthy(reportId);
  await server.services.mailboxes.setActive(sender.id, false);
  const finishing = later(periods.inboxExpiryMs + 2 * SECOND);
  await advanceLifecycle(finishing, messageId);
  t.like(await server.services.messages.get(reportId), { type: 'REPORT', status: 'accepted' });
  t.true((await nextCheckOf(reportId))!.getTime() <= finishing.now().getTime(), "the report's check is due now, not an inbox expiry on");
  await advanceLifecycle(later(periods.inboxExpiryMs + 3 * SECOND), reportId);
  t.like(await server.services.messages.get(reportId), { status: 'undeliverable' });
  t.is(await server.redis.zscore(redisKeys(server.redisPrefix).inbox(sender.id), reportId), null, 'not left waiting in the inbox of a mailbox nobody reads');
});

test('an uncollected report expires quietly: no report about a report', async (t) => {
  const [sender, recipient] = [await server.createMailbox(), await server.createMailbox()];
  const messageId = await sendMessage(server, sender, recipient, 'ignored again');
  await advanceLifecycle(later(periods.inboxExpiryMs + SECOND), messageId);
  const [reportId] = await inboxOf(sender);
  t.truthy(reportId);
  await advanceLifecycle(later(2 * periods.inboxExpiryMs + 2 * SECOND), reportId!);
  t.is((await server.services.messages.get(reportId!))?.status, 'undeliverable');
  t.deepEqual(await inboxOf(sender), [], 'the report left the inbox and nothing replaced it');
});

test('an acknowledged report is downloadable until its payload retention has passed, then 410, as any acknowledged message', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'never collected');
  await advanceLifecycle(later(periods.inboxExpiryMs + SECOND), messageId);
  const reportId = (await server.services.messages.get(messageId))!.reportId;
  t.truthy(reportId);
  t.is((await mailboxRequest(server, lab, { method: 'PUT', path: `/messageexchange/${lab.id}/inbox/${reportId}/status/acknowledged` })).status, 200);
  t.is((await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/inbox/${reportId}` })).status, 200, 'within the retention');
  await advanceLifecycle(later(periods.payloadRetentionMs + SECOND), reportId);
  t.is((await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/inbox/${reportId}` })).status, 410);
});

test('an expiry that loses to an acknowledgement gives its report id back: no reservation held a day, no check of it coming again and again', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'acknowledged just in time');
  const stale = (await server.services.messages.get(messageId))!;
  t.is((await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` })).status, 200);
  const checking = later(periods.inboxExpiryMs + SECOND);
  const issued: string[] = [];
  const newMessageId = (at: Date): string => {
    const id = checking.newMessageId(at);
    issued.push(id);
    return id;
  };
  await advanceLifecycle({ ...checking, messages: staleFirst(stale), newMessageId }, messageId);
  t.is((await server.services.messages.get(messageId))?.status, 'acknowledged', 'the acknowledgement won');
  t.is(issued.length, 1, 'a report id was reserved for the expiry the check read as due');
  const [unused] = issued as [string];
  t.is(await server.services.messages.get(unused), undefined, 'no report was made');
  t.false(await server.services.messages.isReserved(unused));
  t.is(await advanceLifecycle(later(periods.inboxExpiryMs + 2 * SECOND), unused), undefined, "its check ends the id's life");
});

test("an expiry whose second step comes only after its report id's first check has ended that id's life still leaves the report a lifecycle: it expires and is purged in the end", async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'never collected');
  const { schedule } = server.connections;
  // The worker expires the message, reserving its report's id, and is killed before the report is recorded.
  const killed = overriding(server.services.messages, { finishExpiry: async () => Promise.reject(new Error('killed')) });
  await t.throwsAsync(advanceLifecycle({ ...later(periods.inboxExpiryMs + SECOND), messages: killed }, messageId), { message: 'killed' });
  const { reportId } = (await server.services.messages.get(messageId))!;
  t.truthy(reportId);
  // No worker runs for longer than the inbox expiry and the day the id is reserved (its reservation gone): the id's check finds
  // nothing, and ends its life, as a worker releases a claim with no next check.
  await server.redis.del(redisKeys(server.redisPrefix).messageIdReservation(reportId));
  const due = (await nextCheckOf(reportId))!.getTime();
  t.is(await advanceLifecycle(later(2 * periods.inboxExpiryMs + 2 * SECOND), reportId), undefined);
  await schedule.release({ messageId: reportId, leaseEnd: due }, undefined);
  t.is(await nextCheckOf(reportId), undefined);
  // Then the expiry is finished: the report recorded and delivered, with a check of its own.
  await advanceLifecycle(later(2 * periods.inboxExpiryMs + 3 * SECOND), messageId);
  t.like(await server.services.messages.get(reportId), { type: 'REPORT', status: 'accepted' });
  t.truthy(await nextCheckOf(reportId), 'the report is looked at again: it expires, and is purged, in the end');
});

test('an expiry interrupted between its steps is finished by the next run: out of the inbox, one report, never delivered twice', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'cut off while expiring');
  const now = new Date(Date.now() + periods.inboxExpiryMs + SECOND);
  const messageKey = redisKeys(server.redisPrefix).message(messageId);
  // The first step alone, as if the worker died right after it.
  t.true(await server.services.messages.expire((await server.services.messages.get(messageId))!, newMessageId(now), MeshErrorCodes.undeliveredMessage, now));
  t.true((await inboxOf(gp)).includes(messageId), 'the inbox is only left in the next step');
  t.true((await server.services.messages.get(messageId))!.expiryPending);

  await advanceLifecycle(later(periods.inboxExpiryMs + SECOND), messageId);
  const finished = (await server.services.messages.get(messageId))!;
  t.false(finished.expiryPending);
  t.false((await inboxOf(gp)).includes(messageId));
  t.true((await inboxOf(lab)).includes(finished.reportId));
  t.like(await server.services.messages.get(finished.reportId), { type: 'REPORT', status: 'accepted', linkedMessageId: messageId });

  // A run that died after delivering the report but before clearing the mark, twice over:
  // once before the sender collected the report, once after.
  await server.redis.hset(messageKey, 'expiryPending', '1');
  await advanceLifecycle(later(periods.inboxExpiryMs + SECOND), messageId);
  t.deepEqual((await inboxOf(lab)).filter((id) => id === finished.reportId), [finished.reportId], 'listed once');
  const ack = await mailboxRequest(server, lab, { method: 'PUT', path: `/messageexchange/${lab.id}/inbox/${finished.reportId}/status/acknowledged` });
  t.is(ack.status, 200);
  await server.redis.hset(messageKey, 'expiryPending', '1');
  await advanceLifecycle(later(periods.inboxExpiryMs + SECOND), messageId);
  t.false((await inboxOf(lab)).includes(finished.reportId), 'a collected report does not come back');
});

test('an acknowledgement cut off before the inbox was updated, and never retried, is completed by the next lifecycle check: the message is listed no more', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'acknowledged, still listed');
  // As if the server died after recording the acknowledgement, before leaving the inbox and moving the check.
  t.is(await server.services.messages.acknowledge(messageId, gp.id, new Date()), 'acknowledged');
  t.true((await inboxOf(gp)).includes(messageId));
  await advanceLifecycle(later(SECOND), messageId);
  t.false((await inboxOf(gp)).includes(messageId));
});

test('an acceptance or acknowledgement cut off before the inbox was updated is completed when the client retries', async (t) => {
  const chunks = [Buffer.alloc(10, 1), Buffer.alloc(10, 2)];
  const messageId = await startTwoChunkMessage('RETRY', chunks[0]!);
  const lastChunk = () =>
    mailboxRequest(server, lab, {
      method: 'POST',
      path: `/messageexchange/${lab.id}/outbox/${messageId}/2`,
      headers: { 'mex-Chunk-Range': '2:2' },
      body: chunks[1],
    });
  t.is((await lastChunk()).status, 202);
  const inboxKey = redisKeys(server.redisPrefix).inbox(gp.id);
  // As if the server died after accepting the message, before putting it into the inbox.
  await server.redis.zrem(inboxKey, messageId);
  t.is((await lastChunk()).status, 423, 'the retried chunk is refused: the message is complete');
  t.true((await inboxOf(gp)).includes(messageId), 'but the retry delivered it');

  const acknowledge = () => mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` });
  t.is((await acknowledge()).status, 200);
  // As if the server died after recording the acknowledgement, before leaving the inbox.
  await server.redis.zadd(inboxKey, 1, messageId);
  t.is((await acknowledge()).status, 200);
  t.false((await inboxOf(gp)).includes(messageId));
  t.is((await lastChunk()).status, 423);
  t.false((await inboxOf(gp)).includes(messageId), 'a late chunk retry never brings back an acknowledged message');
});

/** The services, except that delivering into an inbox fails: Redis gone for a moment right after acceptance (a crash there leaves the same state, unanswered). */
function cutOffBeforeDelivery(): Services {
  const lost = async (): Promise<void> => {
    throw new Error('connection lost');
  };
  return { ...server.services, messages: overriding(server.services.messages, { deliver: lost, deliverChecked: lost }) };
}


test('a delivered send is next looked at a payload retention on; one cut off before the inbox is delivered at its first check', async (t) => {
  const delivered = await sendMessage(server, lab, gp, 'delivered');
  const accepted = (await server.services.messages.get(delivered))!.acceptedAt!;
  t.is((await nextCheckOf(delivered))?.getTime(), accepted.getTime() + periods.payloadRetentionMs, 'next a payload retention on (its expiry is later)');

  const { chunk: _chunk, ...metadata } = sendMetadata({ 'mex-to': gp.id, 'mex-workflowid': 'CUT' });
  const body = Buffer.from('cut off');
  const started = Date.now();
  const sent = await sendThroughDomain(cutOffBeforeDelivery(), {
    sender: (await server.services.mailboxes.get(lab.id))!,
    metadata,
    body: { stream: Readable.from([body]), contentLength: body.length, contentEncoding: '' },
  });
  t.deepEqual(
    (await sent.followUp).map(({ step, error }) => [step, (error as Error).message]),
    [['delivery', 'connection lost']],
    'sent all the same (a 202, so the sender does not send it again); the failure is reported, not thrown, and the first check stays',
  );
  const stranded = sent.messageId;
  const message = (await server.services.messages.get(stranded))!;
  t.is(message.status, 'accepted');
  t.false((await inboxOf(gp)).includes(stranded), 'accepted, but not in the inbox');
  const firstCheck = (await nextCheckOf(stranded))!.getTime();
  t.true(firstCheck >= started + periods.deliveryCheckMs && firstCheck <= Date.now() + periods.deliveryCheckMs, 'checked once the request has surely ended');

  const next = await advanceLifecycle(later(periods.deliveryCheckMs), stranded);
  t.true((await inboxOf(gp)).includes(stranded), 'the first check delivered it');
  t.true(next!.getTime() > Date.now() + periods.deliveryCheckMs, 'and it waits, a payload retention from that check');
  t.is((await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${stranded}` })).body.toString(), 'cut off');
});

test('a send is answered once its message is recorded, its delivery, index and audit entry issued; should moving its first check on fail, that check comes as first set', async (t) => {
  const { promise: reached, resolve: reach } = Promise.withResolvers<void>();
  const { promise: held, resolve: release } = Promise.withResolvers<void>();
  const issued: string[] = [];
  const real = server.services.messages;
  const messages = overriding(real, {
    deliver: async (id: string, recipient: string) => {
      issued.push('delivery');
      reach();
      await held;
      await real.deliver(id, recipient);
    },
    indexLocalId: async (id, message) => {
      issued.push('index');
      await real.indexLocalId(id, message);
    },
  });
  const audit = overriding(server.services.audit, {
    record: async (entry) => {
      issued.push('audit');
      await server.services.audit.record(entry);
    },
  });
  const lifecycle = overriding(server.services.lifecycle, {
    postpone: async () => {
      throw new Error('connection lost');
    },
  });
  const { chunk: _chunk, ...metadata } = sendMetadata({ 'mex-to': gp.id, 'mex-workflowid': 'AFTER', 'mex-localid': 'answered-first' });
  const body = Buffer.from('answered first');
  const sending = sendThroughDomain(
    { ...server.services, messages, audit, lifecycle },
    { sender: (await server.services.mailboxes.get(lab.id))!, metadata, body: { stream: Readable.from([body]), contentLength: body.length, contentEncoding: '' } },
  );
  // Answered at once (microtasks), with its steps already issued, rather than still waiting once the event loop has turned.
  const first = await Promise.race([sending.then(() => [...issued].sort().join(' ')), reached.then(() => new Promise((turned) => setImmediate(turned, 'held')))]);
  if (first === 'held') release();
  t.is(first, 'audit delivery index', 'answered with its delivery, index and audit entry issued, the delivery still on its way');
  const sent = await sending;
  t.is((await real.get(sent.messageId))?.status, 'accepted', 'recorded');
  t.false((await inboxOf(gp)).includes(sent.messageId), 'listed only once its delivery lands');
  release();
  t.deepEqual(
    (await sent.followUp).map(({ step, error }) => [step, (error as Error).message]),
    [['schedule', 'connection lost']],
    'the failure is reported, not thrown: the message is sent',
  );
  t.true((await inboxOf(gp)).includes(sent.messageId), 'delivered');
  t.true((await nextCheckOf(sent.messageId))!.getTime() <= Date.now() + periods.deliveryCheckMs, 'its first check was not moved on');
  const next = await advanceLifecycle(later(periods.deliveryCheckMs), sent.messageId);
  t.true(next!.getTime() > Date.now() + periods.deliveryCheckMs, 'which moves it on when it comes');
});

test('a mailbox sending to itself that acknowledges the message (through another process) before its delivery lands does not find it listed again', async (t) => {
  const { promise: reached, resolve: reach } = Promise.withResolvers<void>();
  const { promise: held, resolve: release } = Promise.withResolvers<void>();
  const real = server.services.messages;
  const messages = overriding(real, {
    deliver: async (id: string, recipient: string) => {
      reach();
      await held;
      await real.deliver(id, recipient);
    },
  });
  const { chunk: _chunk, ...metadata } = sendMetadata({ 'mex-to': lab.id, 'mex-workflowid': 'SELF' });
  const body = Buffer.from('to myself');
  const sent = await sendThroughDomain(
    { ...server.services, messages },
    { sender: (await server.services.mailboxes.get(lab.id))!, metadata, body: { stream: Readable.from([body]), contentLength: body.length, contentEncoding: '' } },
  );
  await reached;
  await acknowledgeMessage(server.services, lab.id, sent.messageId);
  release();
  t.deepEqual(await sent.followUp, []);
  t.is((await real.get(sent.messageId))?.status, 'acknowledged');
  t.false((await inboxOf(lab)).includes(sent.messageId), 'the late delivery leaves it out of the inbox');
});

test("a check that read a message, then lost its lease while another worker purged it, indexes no local id when it goes on: tracking by that local id finds only the messages there are", async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'x', { 'mex-LocalID': 'stale-check-1' });
  t.is((await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` })).status, 200);
  await advanceLifecycle(later(periods.payloadRetentionMs + SECOND), messageId);
  const stale = (await server.services.messages.get(messageId))!;
  await advanceLifecycle(later(periods.messageRetentionMs + SECOND), messageId);
  t.is(await server.services.messages.get(messageId), undefined, 'purged by the worker that took the lease');
  // The first worker goes on with what it read before.
  let reads = 0;
  const messages = overriding(server.services.messages, { get: async (id: string) => (reads++ === 0 ? stale : server.services.messages.get(id)) });
  await advanceLifecycle({ ...later(periods.payloadRetentionMs + 2 * SECOND), messages }, messageId);
  const again = await sendMessage(server, lab, gp, 'again', { 'mex-LocalID': 'stale-check-1' });
  const tracked = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking/stale-check-1` });
  t.is(tracked.status, 200);
  t.is(tracked.json().messageId, again);
});

test('a send whose local-id index failed is answered 202 all the same and indexed by its first check', async (t) => {
  let failedOnce = false;
  const messages = overriding(server.services.messages, {
    indexLocalId: async (id, message) => {
      if (!failedOnce) {
        failedOnce = true;
        throw new Error('connection lost');
      }
      await server.services.messages.indexLocalId(id, message);
    },
  });
  const { chunk: _chunk, ...metadata } = sendMetadata({ 'mex-to': gp.id, 'mex-workflowid': 'INDEX', 'mex-localid': 'lab-ref-index' });
  const body = Buffer.from('indexed later');
  const started = Date.now();
  const sent = await sendThroughDomain(
    { ...server.services, messages },
    {
      sender: (await server.services.mailboxes.get(lab.id))!,
      metadata,
      body: { stream: Readable.from([body]), contentLength: body.length, contentEncoding: '' },
    },
  );
  t.deepEqual((await sent.followUp).map(({ step }) => step), ['index'], 'and the first check stays');
  t.true((await inboxOf(gp)).includes(sent.messageId), 'delivered');
  t.false((await server.services.messages.findByLocalId(lab.id, 'lab-ref-index', 10)).ids.includes(sent.messageId));
  t.true((await nextCheckOf(sent.messageId))!.getTime() <= Date.now() + periods.deliveryCheckMs, 'its first check was not moved on');
  t.true((await nextCheckOf(sent.messageId))!.getTime() >= started + periods.deliveryCheckMs);
  await advanceLifecycle(later(periods.deliveryCheckMs), sent.messageId);
  t.true((await server.services.messages.findByLocalId(lab.id, 'lab-ref-index', 10)).ids.includes(sent.messageId), 'the check indexed it');
});

test('an uploading message is looked at every delivery-check period: a final chunk cut off before the inbox, and never retried, is delivered by the next', async (t) => {
  const chunks = [Buffer.alloc(10, 1), Buffer.alloc(10, 2)];
  const messageId = await startTwoChunkMessage('CUT', chunks[0]!);
  // Its upload not overdue yet: the next check comes a delivery-check period on, well before the upload's deadline.
  const created = (await server.services.messages.get(messageId))!.createdAt.getTime();
  const checkedAt = Date.now() + periods.deliveryCheckMs;
  const afterFirstCheck = await advanceLifecycle(later(periods.deliveryCheckMs), messageId);
  t.true(afterFirstCheck!.getTime() >= checkedAt + periods.deliveryCheckMs && afterFirstCheck!.getTime() < created + periods.uploadExpiryMs);

  const unfinished = await uploadChunk(cutOffBeforeDelivery(), {
    sender: lab.id,
    messageId,
    chunkNumber: 2,
    totalChunks: 2,
    body: { stream: Readable.from([chunks[1]]), contentLength: chunks[1]!.length, contentEncoding: '' },
    repeated: false,
  });
  t.deepEqual(unfinished.map(({ step }) => step), ['delivery'], 'stored all the same: a retry would only be refused as locked');
  t.is((await server.services.messages.get(messageId))!.status, 'accepted');
  t.false((await inboxOf(gp)).includes(messageId));
  // The next check, when it comes.
  await advanceLifecycle({ ...server.services, now: () => afterFirstCheck! }, messageId);
  t.true((await inboxOf(gp)).includes(messageId), 'delivered by that check');
});

test('a first check brought forward meanwhile is not postponed', async (t) => {
  const schedule = server.connections.schedule;
  const messageId = newMessageId(new Date());
  const [first, earlier, expiry] = [10, 5, 100].map((seconds) => new Date(Date.now() + seconds * SECOND)) as [Date, Date, Date];
  await schedule.start(messageId, first);
  await schedule.postpone(messageId, first, expiry);
  t.is((await schedule.nextCheck(messageId))?.getTime(), expiry.getTime(), 'still the first check: moved');
  await schedule.schedule(messageId, earlier);
  await schedule.postpone(messageId, expiry, new Date(expiry.getTime() + SECOND));
  t.is((await schedule.nextCheck(messageId))?.getTime(), earlier.getTime(), 'brought forward (an acknowledgement): left');
  await schedule.release({ messageId, leaseEnd: earlier.getTime() }, undefined);
});

test('a retried final chunk that read the message just before it was acknowledged does not bring it back into the inbox', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'acknowledged during a retry');
  // What the retry read: accepted. Then the recipient acknowledged it, before the retry delivered.
  const stale = (await server.services.messages.get(messageId))!;
  const ack = await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` });
  t.is(ack.status, 200);
  const retry = uploadChunk(
    { ...server.services, messages: staleFirst(stale) },
    {
      sender: lab.id,
      messageId,
      chunkNumber: 1,
      totalChunks: 1,
      body: { stream: Readable.from([Buffer.from('acknowledged during a retry')]), contentLength: 27, contentEncoding: '' },
      repeated: false,
    },
  );
  const refusal = await t.throwsAsync(retry, { instanceOf: MeshError });
  t.is(refusal?.status, 423, 'refused as complete, as before');
  t.false((await inboxOf(gp)).includes(messageId), 'not listed: it could not be downloaded');
  t.is((await server.services.messages.get(messageId))!.status, 'acknowledged');
});

test('a delivery that lands after the message was acknowledged, expired or purged leaves it out of the inbox', async (t) => {
  const inboxKey = redisKeys(server.redisPrefix).inbox(gp.id);
  const [acknowledged, expired, purged] = [
    await sendMessage(server, lab, gp, 'acknowledged'),
    await sendMessage(server, lab, gp, 'expired'),
    await sendMessage(server, lab, gp, 'purged'),
  ];
  t.is((await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${acknowledged}/status/acknowledged` })).status, 200);
  const expiring = (await server.services.messages.get(expired))!;
  t.true(await server.services.messages.expire(expiring, '', MeshErrorCodes.undeliveredMessage, new Date()));
  await server.services.messages.finishExpiry({ ...expiring, reportId: '' }, new Date());
  await server.services.messages.purge((await server.services.messages.get(purged))!);
  t.false((await inboxOf(gp)).some((id) => [acknowledged, expired, purged].includes(id)));

  // Each one's delivery by an attempt that was overtaken (a stalled first try, a second worker):
  for (const id of [acknowledged, expired, purged]) await server.services.messages.deliverChecked(id, gp.id);
  const listed = await inboxOf(gp);
  t.deepEqual(listed.filter((id) => [acknowledged, expired, purged].includes(id)), []);
  // While an accepted message is delivered as ever.
  const accepted = await sendMessage(server, lab, gp, 'accepted');
  await server.redis.zrem(inboxKey, accepted);
  await server.services.messages.deliverChecked(accepted, gp.id);
  t.true((await inboxOf(gp)).includes(accepted));
});

test('a message listed though it can no longer be downloaded (a delivery cut off before its check) leaves the list when its recipient asks for it', async (t) => {
  const [fetched, acknowledged] = [await sendMessage(server, lab, gp, 'fetched'), await sendMessage(server, lab, gp, 'acknowledged')];
  // Expired but still listed, as if the step that leaves the inbox never ran.
  for (const id of [fetched, acknowledged]) {
    t.true(await server.services.messages.expire((await server.services.messages.get(id))!, '', MeshErrorCodes.undeliveredMessage, new Date()));
  }
  t.true((await inboxOf(gp)).includes(fetched));
  t.true((await inboxOf(gp)).includes(acknowledged));

  t.is((await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${fetched}` })).status, 410);
  const ack = await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${acknowledged}/status/acknowledged` });
  t.is(ack.status, 410);
  const listed = await inboxOf(gp);
  t.false(listed.includes(fetched));
  t.false(listed.includes(acknowledged));
});

test('a check that finds a send still storing chunk 1 (its id reserved) looks again a delivery-check period on, as for an upload: the send may record the message and stop short of delivering it', async (t) => {
  const reserved = newMessageId();
  t.truthy(await server.services.messages.reserveId(reserved));
  const before = Date.now();
  const next = await advanceLifecycle(server.services, reserved);
  t.truthy(next);
  t.true(next!.getTime() >= before + periods.deliveryCheckMs && next!.getTime() <= Date.now() + periods.deliveryCheckMs, String(next));
});

test('an id stays taken while its message is recorded: it cannot be reserved again', async (t) => {
  const messageId = await sendMessage(server, lab, gp, 'mine');
  t.is(await server.services.messages.reserveId(messageId), undefined);
  const fresh = newMessageId();
  t.truthy(await server.services.messages.reserveId(fresh));
  t.is(await server.services.messages.reserveId(fresh), undefined, 'nor while another send holds it');
});

test('a reservation given back (its send cut off before its message was recorded) frees the id; given back again once another send holds it, it leaves that one alone', async (t) => {
  const id = newMessageId();
  const first = await server.services.messages.reserveId(id);
  if (!first) return t.fail('not reserved');
  await first.release();
  const second = await server.services.messages.reserveId(id);
  t.truthy(second, 'free again');
  await first.release();
  t.is(await server.services.messages.reserveId(id), undefined, 'still held by the second');
  await second?.release();
});

test('a small send offered a taken id (a recorded message, a large send\'s reservation) takes another; both keep theirs', async (t) => {
  const recorded = await sendMessage(server, lab, gp, 'mine');
  const reserved = newMessageId();
  t.truthy(await server.services.messages.reserveId(reserved));
  const fresh = newMessageId();
  const offered = [recorded, reserved, fresh];
  const services: Services = { ...server.services, newMessageId: () => offered.shift() ?? newMessageId() };
  const body = Buffer.from('not yours');
  // As the outbox route reads it from the request's MESH headers.
  const { chunk: _chunk, ...metadata } = sendMetadata({ 'mex-to': gp.id, 'mex-workflowid': 'CLASH' });
  const { messageId, followUp } = await sendThroughDomain(services, {
    sender: (await server.services.mailboxes.get(lab.id))!,
    metadata,
    body: { stream: Readable.from([body]), contentLength: body.length, contentEncoding: '' },
  });
  t.deepEqual(await followUp, []);
  t.is(messageId, fresh);
  t.deepEqual(offered, [], 'each taken id was tried, then given up');
  const download = (id: string) => mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${id}` });
  t.is((await download(recorded)).body.toString(), 'mine');
  t.is((await download(fresh)).body.toString(), 'not yours');
  // The send holding the reservation records its own message under it as ever.
  const record = (await server.services.messages.get(recorded))!;
  t.is(await server.services.messages.create(reserved, record, 4, new Date()), 'accepted');
});

const silent = pino({ level: 'silent' });

test('audit entries past the audit retention are deleted and newer ones stay; a retention of 0 keeps them all', async (t) => {
  const own = await startTestServer({ worker: false });
  try {
    const [sender, recipient] = [await own.createMailbox(), await own.createMailbox()];
    await sendMessage(own, sender, recipient, 'recent');
    // A shard of its own: a trim drops whole nodes of a stream, and an old entry sharing one with
    // the send's would stay until they are due too (the next test).
    const keys = redisKeys(own.redisPrefix);
    const lengths = await Promise.all(Array.from({ length: AUDIT_SHARDS }, (_, shard) => own.redis.xlen(keys.auditLog(shard))));
    const longAgo = Date.now() - DEFAULT_PERIODS.auditRetentionMs - 60_000;
    await own.redis.xadd(keys.auditLog(lengths.indexOf(0)), `${longAgo}-0`, 'action', 'send', 'actor', 'OLD');
    const actors = async () => (await own.services.audit.tail(100)).map((entry) => entry.actor);
    t.true((await actors()).includes('OLD'));

    const keepForEver = { ...own.services, periods: { ...own.services.periods, auditRetentionMs: 0 } };
    t.is(await trimAuditLog(keepForEver, silent), 0);
    t.true((await actors()).includes('OLD'));

    t.is(await trimAuditLog(own.services, silent), 1);
    t.deepEqual(await actors(), [sender.id], 'the recent send is still there');
  } finally {
    await own.close();
  }
});

test('an audit trim deletes a backlog a bounded step at a time over runs: none newer than the mark, and at most a node of older ones left until they are all due', async (t) => {
  const own = await startTestServer({ worker: false });
  try {
    const audit = redisKeys(own.redisPrefix).auditLog(5);
    const mark = Date.now() - DEFAULT_PERIODS.auditRetentionMs;
    // 50,050 entries before the mark, then 300 from it on: the last node of old ones holds new ones too.
    const [old, recent] = [50_050, 300];
    const ids = [...Array.from({ length: old }, (_, i) => `${mark - old + i}-0`), ...Array.from({ length: recent }, (_, i) => `${mark + i}-0`)];
    for (let from = 0; from < ids.length; from += 5_000) {
      const pipeline = own.redis.pipeline();
      for (const id of ids.slice(from, from + 5_000)) pipeline.xadd(audit, id, 'action', 'download', 'actor', 'X26ABC001');
      await pipeline.exec();
    }
    const bounds = { perStep: 1_000, perRun: 10_000 };
    const [, nodeEntries] = (await own.redis.config('GET', 'stream-node-max-entries')) as [string, string];
    t.true(Number(nodeEntries) <= bounds.perStep, 'a node fits in a step');

    const first = await own.services.audit.trimBefore(new Date(mark), { ...bounds, perRun: 1 });
    const deleted = ids.length - (await own.redis.xlen(audit));
    t.true(deleted > 0 && deleted <= bounds.perStep, `one step deleted ${deleted}`);
    t.deepEqual(first, { removed: deleted, backlog: true });

    let runs = 1;
    for (let backlog = true; backlog; runs++) {
      const before = await own.redis.xlen(audit);
      const run = await own.services.audit.trimBefore(new Date(mark), bounds);
      t.is(await own.redis.xlen(audit), before - run.removed, 'what a run reports is what went');
      t.true(run.removed < bounds.perRun + bounds.perStep, `a run deleted ${run.removed}`);
      backlog = run.backlog;
    }
    t.true(runs > old / (bounds.perRun + bounds.perStep), `${runs} runs`);

    const left = (await own.redis.xrange(audit, '-', '+')).map(([id]) => id);
    t.deepEqual(left.slice(-recent), ids.slice(-recent), 'every entry from the mark on is there');
    const olderLeft = left.length - recent;
    t.log(`${olderLeft} older entries left in the node holding the mark`);
    t.true(olderLeft <= Number(nodeEntries));
    t.deepEqual(left.slice(0, olderLeft), ids.slice(old - olderLeft, old), 'the newest of the older ones');
    t.deepEqual(await own.services.audit.trimBefore(new Date(mark), bounds), { removed: 0, backlog: false });

    // Once the entries after them are due, they go too.
    t.deepEqual(await own.services.audit.trimBefore(new Date(mark + recent), bounds), { removed: left.length, backlog: false });
  } finally {
    await own.close();
  }
});

test('the latest audit entries are merged from every shard in time order, a batch at a time, however many are asked for', async (t) => {
  const own = await startTestServer({ worker: false });
  try {
    const keys = redisKeys(own.redisPrefix);
    const start = Date.now() - 60_000;
    // 1,600 entries over the shards, unevenly, interleaved in time; some in the same millisecond.
    const written: string[] = [];
    for (let i = 0; i < 1_600; i++) {
      const id = `${start + Math.floor(i / 2)}-${i % 2}`;
      await own.redis.xadd(keys.auditLog((i * 7) % 5 === 0 ? 0 : i % AUDIT_SHARDS), id, 'action', 'send', 'actor', `A${i}`);
      written.push(`A${i}`);
    }
    for (const count of [1, 499, 1_200, 5_000]) {
      const actors = (await own.services.audit.tail(count)).map((entry) => entry.actor);
      const expected = written.slice(-Math.min(count, written.length));
      // Entries of one millisecond in different shards may come either way round: compare by millisecond.
      const millisecond = (actor: string) => Math.floor(Number(actor.slice(1)) / 2);
      t.deepEqual(actors.map(millisecond), expected.map(millisecond), `tail(${count})`);
      t.deepEqual(new Set(actors), new Set(expected));
    }
  } finally {
    await own.close();
  }
});

test('an upload completed just as its deadline passed is not abandoned by a worker that saw it uploading', async (t) => {
  const upload = (n: number, path: string, body: string) =>
    mailboxRequest(server, lab, { method: 'POST', path, headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'RACE', 'mex-Chunk-Range': `${n}:2` }, body });
  const messageId: string = (await upload(1, `/messageexchange/${lab.id}/outbox`, 'part one, ')).json().message_id;
  // What the worker read, just before the last chunk came in.
  const stale = (await server.services.messages.get(messageId))!;
  t.is(stale.status, 'uploading');
  t.is((await upload(2, `/messageexchange/${lab.id}/outbox/${messageId}/2`, 'part two')).status, 202);

  await advanceLifecycle({ ...later(periods.uploadExpiryMs + SECOND), messages: staleFirst(stale) }, messageId);

  t.is((await server.services.messages.get(messageId))!.status, 'accepted');
  t.is(await objectsOf(messageId), 2, 'its chunks are still there');
  const first = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` });
  t.is(first.status, 206);
  t.is(first.body.toString(), 'part one, ');
});
