import { randomBytes } from 'node:crypto';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import test from 'ava';
import { startTestServer, type TestMailbox, type TestServer } from '../support/harness.ts';
import { mailboxRequest } from '../support/http.ts';

let server: TestServer;
let lab: TestMailbox;
let gp: TestMailbox;

test.before(async () => {
  server = await startTestServer({ limits: { maxChunkBytes: 10_000, maxChunks: 5, maxMessageBytes: 25_000 } });
  lab = await server.createMailbox();
  gp = await server.createMailbox();
});

test.after.always(async () => {
  await server?.close();
});

function send(body: Buffer, headers: Record<string, string> = {}) {
  return mailboxRequest(server, lab, {
    method: 'POST',
    path: `/messageexchange/${lab.id}/outbox`,
    headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'LIMITS', ...headers },
    body,
  });
}

async function storedObjects(): Promise<number> {
  const listing = await server.connections.s3.send(new ListObjectsV2Command({ Bucket: server.bucket }));
  return listing.KeyCount ?? 0;
}

const inboxCount = async (): Promise<number> =>
  (await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/count` })).json().count;

/** What a send holds in Redis before its message is recorded: ids reserved, and lifecycle checks scheduled (which sweeps may end meanwhile). */
async function reservedAndScheduled(): Promise<{ reserved: number; scheduled: number }> {
  const reservations = await server.redis.keys(`${server.redisPrefix}message-id-reservation:*`);
  const shards = await server.redis.keys(`${server.redisPrefix}lifecycle-schedule:*`);
  const scheduled = await Promise.all(shards.map((shard) => server.redis.zcard(shard)));
  return { reserved: reservations.length, scheduled: scheduled.reduce((sum, count) => sum + count, 0) };
}

test.serial('a chunk declared larger than the limit is refused with 413 before it is stored, and before an id is reserved and checked for a day', async (t) => {
  const before = await storedObjects();
  const held = await reservedAndScheduled();
  const response = await send(randomBytes(10_001));
  t.is(response.status, 413);
  t.like(response.json().detail[0], { code: '413' });
  t.regex(response.json().detail[0].msg, /10000 bytes/);
  t.is(await storedObjects(), before);
  const after = await reservedAndScheduled();
  t.is(after.reserved, held.reserved);
  t.true(after.scheduled <= held.scheduled);
  t.is(await inboxCount(), 0);
});

test.serial('a streamed (chunked, no Content-Length) body is cut off at the limit and nothing of it is kept', async (t) => {
  const before = await storedObjects();
  const response = await send(randomBytes(30_000), { 'transfer-encoding': 'chunked' });
  t.is(response.status, 413);
  t.is(response.json().message_id, null, 'no message was recorded to name');
  t.is(await storedObjects(), before);
  t.is(await inboxCount(), 0);
});

test.serial('a message whose chunks add up to more than the message limit never becomes visible', async (t) => {
  const first = await send(randomBytes(10_000), { 'mex-Chunk-Range': '1:3' });
  t.is(first.status, 202);
  const messageId: string = first.json().message_id;
  const chunk = (n: number) =>
    mailboxRequest(server, lab, {
      method: 'POST',
      path: `/messageexchange/${lab.id}/outbox/${messageId}/${n}`,
      headers: { 'mex-Chunk-Range': `${n}:3` },
      body: randomBytes(10_000),
    });
  t.is((await chunk(2)).status, 202);
  const over = await chunk(3);
  t.is(over.status, 413);
  t.is(over.json().message_id, messageId);
  t.is(await inboxCount(), 0);
  const tracking = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` });
  t.is(tracking.json().status, 'uploading');
  t.deepEqual(await server.services.messages.storedChunks(messageId), [
    { number: 1, size: 10_000 },
    { number: 2, size: 10_000 },
  ]);
});

test.serial('more chunks than allowed are refused at the first chunk', async (t) => {
  const response = await send(Buffer.from('x'), { 'mex-Chunk-Range': '1:6' });
  t.is(response.status, 417);
  t.is(response.json().detail[0].code, 'InvalidHeaderChunks');
});
