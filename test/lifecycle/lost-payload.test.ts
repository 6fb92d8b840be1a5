import test from 'ava';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { pino } from 'pino';
import { acknowledgeMessage } from '../../server/src/domain/acknowledge.ts';
import { downloadChunk } from '../../server/src/domain/download.ts';
import { PayloadMissingError } from '../../server/src/domain/errors.ts';
import { advanceLifecycle, undeliveredDescription } from '../../server/src/domain/lifecycle.ts';
import { runDueLifecycles } from '../../server/src/jobs/lifecycle-worker.ts';
import { PayloadStore } from '../../server/src/store/payloads.ts';
import { MeshErrorCodes } from '../../shared/src/protocol/index.ts';
import type { TestMailbox, TestServer } from '../support/harness.ts';
import { prepareLifecycleSetting } from '../support/lifecycle-setting.ts';
import { overriding } from '../support/overriding.ts';
import { mailboxRequest, sendMessage } from '../support/http.ts';

// Serial: each test runs every check that is due on the file's one server, and must not run another's.
let server: TestServer;
let lab: TestMailbox;
let gp: TestMailbox;
const { later, inboxOf, nextCheckOf } = prepareLifecycleSetting(test, (setting) => ({ server, lab, gp } = setting));

const [FIRST, SECOND_CHUNK] = ['pathology result, part one', 'pathology result, part two'];

/** A message of two chunks from lab to gp, in object storage (the setting keeps nothing inline), accepted: its id. */
async function sendTwoChunks(localId: string): Promise<string> {
  const messageId = await sendMessage(server, lab, gp, FIRST, { 'mex-Chunk-Range': '1:2', 'mex-LocalID': localId });
  const last = await mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox/${messageId}/2`, headers: { 'mex-Chunk-Range': '2:2' }, body: SECOND_CHUNK });
  if (last.status !== 202) throw new Error(`chunk 2 refused: ${last.status}`);
  return messageId;
}

/** The key of chunk n's object (`messages/<id>/<n>`, or `.<version>` after it for one uploaded through its own URL). */
async function chunkKey(messageId: string, chunkNumber: number): Promise<string> {
  const prefix = `messages/${messageId}/`;
  const listed = await server.connections.s3.send(new ListObjectsV2Command({ Bucket: server.bucket, Prefix: prefix }));
  const key = listed.Contents?.map((object) => object.Key!).find((name) => name.slice(prefix.length).split('.')[0] === String(chunkNumber));
  if (!key) throw new Error(`chunk ${chunkNumber} of ${messageId} has no object`);
  return key;
}

/** Deletes an object behind meshbox's back, as a bucket lifecycle rule would; answers its bytes, to put back. */
async function deleteObject(key: string): Promise<Buffer> {
  const { s3 } = server.connections;
  const object = await s3.send(new GetObjectCommand({ Bucket: server.bucket, Key: key }));
  const bytes = Buffer.from(await object.Body!.transformToByteArray());
  await s3.send(new DeleteObjectCommand({ Bucket: server.bucket, Key: key }));
  return bytes;
}

const download = (messageId: string, chunkNumber: number) =>
  mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}${chunkNumber === 1 ? '' : `/${chunkNumber}`}` });

const tracking = async (messageId: string) => (await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` })).json();

/** Every lifecycle check due now, as the worker's next sweep runs them. */
const sweep = () => runDueLifecycles(server.services, server.connections.schedule, pino({ level: 'silent' }));

/** The reports in the lab's inbox about a message. */
async function reportsOn(messageId: string): Promise<string[]> {
  const reports: string[] = [];
  for (const id of await inboxOf(lab)) {
    const head = await mailboxRequest(server, lab, { method: 'HEAD', path: `/messageexchange/${lab.id}/inbox/${id}` });
    if (head.headers['mex-linkedmsgid'] === messageId) reports.push(id);
  }
  return reports;
}

test.serial('a waiting message whose chunk object storage lost goes back to its sender at once: the download is answered 410 as before, and the check it brings forward makes it undeliverable and reports it', async (t) => {
  const messageId = await sendTwoChunks('lab-ref-lost');
  await deleteObject(await chunkKey(messageId, 2));

  const answer = await download(messageId, 2);
  t.is(answer.status, 410);
  t.like(answer.json(), { message_id: messageId, detail: [{ event: MeshErrorCodes.messageGone.event, code: MeshErrorCodes.messageGone.code }] });
  t.true((await nextCheckOf(messageId))!.getTime() <= Date.now(), 'its check brought forward to now, not left for its inbox expiry');

  await sweep();
  t.false((await inboxOf(gp)).includes(messageId), 'out of the inbox');
  t.is((await download(messageId, 1)).status, 410);
  const { code, event, description } = MeshErrorCodes.payloadLost;
  t.like(await tracking(messageId), { status: 'undeliverable', status_code: code, status_event: event, status_description: description, status_success: false });

  const reports = await reportsOn(messageId);
  t.is(reports.length, 1, 'one non-delivery report for the sender');
  const report = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/inbox/${reports[0]}` });
  t.like(report.headers, {
    'mex-messagetype': 'REPORT',
    'mex-statuscode': code,
    'mex-statusevent': event,
    'mex-statusdescription': description,
    'mex-statussuccess': 'ERROR',
    'mex-linkedmsgid': messageId,
    'mex-localid': 'lab-ref-lost',
  });
});

test.serial('a chunk missing at a download but there again when the check looks (object storage answering 404 for a moment, an object put back) leaves the message waiting and downloadable', async (t) => {
  const messageId = await sendTwoChunks('lab-ref-back');
  const key = await chunkKey(messageId, 1);
  const bytes = await deleteObject(key);
  t.is((await download(messageId, 1)).status, 410);
  t.is((await server.services.messages.get(messageId))?.missingChunk, 1, 'noted for the check to verify');
  t.true((await nextCheckOf(messageId))!.getTime() <= Date.now());

  await server.connections.s3.send(new PutObjectCommand({ Bucket: server.bucket, Key: key, Body: bytes }));
  await sweep();
  const message = await server.services.messages.get(messageId);
  t.like(message, { status: 'accepted', missingChunk: undefined });
  t.true((await nextCheckOf(messageId))!.getTime() > Date.now(), 'looked at again later, as any waiting message');
  t.true((await inboxOf(gp)).includes(messageId));
  t.is((await download(messageId, 1)).body.toString(), FIRST);
  t.is((await download(messageId, 2)).body.toString(), SECOND_CHUNK);
  t.is((await tracking(messageId)).status, 'accepted');
  t.deepEqual(await reportsOn(messageId), []);
});

test.serial('a download that finds the same chunk missing again while the check verifying its earlier note finds it there keeps its note: the loss it found is verified, not forgotten', async (t) => {
  const messageId = await sendTwoChunks('lab-ref-renoted');
  const key = await chunkKey(messageId, 2);
  // A 404 of a moment: noted, then the object is there again.
  const bytes = await deleteObject(key);
  t.is((await download(messageId, 2)).status, 410);
  t.is((await server.services.messages.get(messageId))?.missingChunk, 2);
  await server.connections.s3.send(new PutObjectCommand({ Bucket: server.bucket, Key: key, Body: bytes }));

  // The check's HEAD finds it; as its answer comes back, the object is lost for good, and the
  // recipient's next download finds it missing and notes it again (and brings the check forward).
  const { s3 } = server.connections;
  const racing = overriding(s3, {
    send: (async (command: unknown) => {
      const answer = await s3.send(command as never);
      if (command instanceof HeadObjectCommand) {
        await s3.send(new DeleteObjectCommand({ Bucket: server.bucket, Key: key }));
        t.is((await download(messageId, 2)).status, 410);
      }
      return answer;
    }) as typeof s3.send,
  });
  await advanceLifecycle({ ...later(0), payloads: new PayloadStore(racing, server.bucket) }, messageId);

  t.is((await server.services.messages.get(messageId))?.missingChunk, 2, 'the note made after the HEAD stands');
  await sweep();
  t.is((await server.services.messages.get(messageId))?.status, 'undeliverable', 'the check the download brought forward sends the message back');
  t.false((await inboxOf(gp)).includes(messageId));
});

test.serial('object storage failing as the check verifies a missing chunk (not a clean 404) expires nothing: the check fails, and its retry does; failing on past the inbox expiry, the message expires then, as not collected', async (t) => {
  const messageId = await sendTwoChunks('lab-ref-failing');
  await deleteObject(await chunkKey(messageId, 2));
  t.is((await download(messageId, 2)).status, 410);

  const { s3 } = server.connections;
  const failing = overriding(s3, {
    send: (async (command: unknown) => {
      if (!(command instanceof HeadObjectCommand)) return s3.send(command as never);
      throw Object.assign(new Error('We encountered an internal error. Please try again.'), { name: 'InternalError', $metadata: { httpStatusCode: 500 } });
    }) as typeof s3.send,
  });
  await t.throwsAsync(advanceLifecycle({ ...later(0), payloads: new PayloadStore(failing, server.bucket) }, messageId), { name: 'InternalError' });
  t.like(await server.services.messages.get(messageId), { status: 'accepted', missingChunk: 2 });
  t.true((await inboxOf(gp)).includes(messageId));

  await advanceLifecycle(later(0), messageId);
  t.is((await tracking(messageId)).status, 'undeliverable');
  t.is((await reportsOn(messageId)).length, 1);

  // Failing on past the message's inbox expiry, it does not hold that expiry back.
  const stuck = await sendTwoChunks('lab-ref-failing-for-days');
  await deleteObject(await chunkKey(stuck, 2));
  t.is((await download(stuck, 2)).status, 410);
  const expired = { ...later(server.services.periods.inboxExpiryMs + 1_000), payloads: new PayloadStore(failing, server.bucket) };
  await advanceLifecycle(expired, stuck);
  t.like(await tracking(stuck), { status: 'undeliverable', status_description: undeliveredDescription(server.services.periods.inboxExpiryMs) });
  t.is((await reportsOn(stuck)).length, 1);
});

test.serial('Redis failing as a download notes a chunk missing still has the loss answered as one (410, logged, counted), not as Redis away: the message is left to its inbox expiry, as before', async (t) => {
  const messageId = await sendTwoChunks('lab-ref-redis-away');
  await deleteObject(await chunkKey(messageId, 2));
  const failingNote = {
    ...server.services,
    messages: overriding(server.services.messages, { noteMissingChunk: async () => Promise.reject(new Error('Connection is closed.')) }),
  };
  await t.throwsAsync(downloadChunk(failingNote, gp.id, messageId, 2), { instanceOf: PayloadMissingError });
  t.is((await server.services.messages.get(messageId))?.missingChunk, undefined, 'nothing noted');
  t.true((await inboxOf(gp)).includes(messageId), 'waiting, to its inbox expiry');
});

test.serial("an acknowledged message's chunk missing (its payload kept, or its purge under way) is answered 410 as before, noted nowhere, and reported to nobody: its recipient has it", async (t) => {
  const [kept, purging] = [await sendTwoChunks('lab-ref-kept'), await sendTwoChunks('lab-ref-purging')];
  for (const messageId of [kept, purging]) {
    await acknowledgeMessage(server.services, gp.id, messageId);
    await deleteObject(await chunkKey(messageId, 2));
  }
  // The setting's payload retention is within the clocks' allowance, so any acknowledged message's
  // purge may be under way; under a day's retention, one acknowledged just now has its payload kept.
  const dayRetention = { ...server.services, periods: { ...server.services.periods, payloadRetentionMs: 86_400_000 } };
  await t.throwsAsync(downloadChunk(dayRetention, gp.id, kept, 2), { instanceOf: PayloadMissingError });
  t.is((await download(purging, 2)).status, 410);
  for (const messageId of [kept, purging]) t.is((await server.services.messages.get(messageId))?.missingChunk, undefined, 'nothing noted');

  await sweep();
  for (const messageId of [kept, purging]) {
    await advanceLifecycle(later(0), messageId);
    t.is((await tracking(messageId)).status, 'acknowledged');
    t.deepEqual(await reportsOn(messageId), []);
  }
});
