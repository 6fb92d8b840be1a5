import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { randomUUID } from 'node:crypto';
import test from 'ava';
import { pino } from 'pino';
import { ensureLocalServices } from '../../scripts/services/index.ts';
import { reconcileLifecycles } from '../../server/src/domain/reconcile.ts';
import { runDueLifecycles } from '../../server/src/jobs/lifecycle-worker.ts';
import { scanPages } from '../../server/src/store/redis-client.ts';
import { runSubprocess } from '../../client-cli/test/support/cli-fixture.ts';
import { startTestServer, TEST_SECRET_KEY, type TestServer } from '../support/harness.ts';
import { LIFECYCLE_TEST_PERIODS, SECOND } from '../support/lifecycle-setting.ts';
import { mailboxRequest, sendMessage } from '../support/http.ts';

const silent = pino({ level: 'silent' });

async function prefixKeys(server: TestServer): Promise<string[]> {
  const keys: string[] = [];
  for await (const page of scanPages((cursor) => server.redis.scan(cursor, 'MATCH', `${server.redisPrefix}*`, 'COUNT', 1000))) keys.push(...page);
  return keys;
}

/**
 * What an operator's restore of Redis does, on this test's own keys only: every key under the
 * test's prefix as it was when snapshot was taken (its value and its absolute expiry), nothing
 * written since. Returns the restore.
 */
async function snapshot(server: TestServer): Promise<() => Promise<void>> {
  const dumps = await Promise.all(
    (await prefixKeys(server)).map(async (key) => ({ key, value: await server.redis.dumpBuffer(key), expiresAt: Number(await server.redis.call('PEXPIRETIME', key)) })),
  );
  return async () => {
    const written = await prefixKeys(server);
    if (written.length > 0) await server.redis.del(...written);
    for (const { key, value, expiresAt } of dumps) {
      if (value) await server.redis.call('RESTORE', key, String(Math.max(expiresAt, 0)), value, ...(expiresAt > 0 ? ['ABSTTL'] : []));
    }
  };
}

async function objectKeys(server: TestServer, messageId: string): Promise<string[]> {
  const listed = await server.connections.s3.send(new ListObjectsV2Command({ Bucket: server.bucket, Prefix: `messages/${messageId}/` }));
  return (listed.Contents ?? []).flatMap((object) => (object.Key ? [object.Key] : []));
}

const stores = (server: TestServer) => ({ messages: server.services.messages, payloads: server.services.payloads, schedule: server.connections.schedule });

// A Redis Cluster master and its replica lost, the node restored from its last backup (or any
// cluster restore: the nodes' backups are never of one instant): the `{schedule-n}` shard comes
// back without the entries written since, while the message records, on other nodes, are there.
test('a message whose lifecycle schedule entry was lost in a restore is given a check by reconcile: it expires, its sender is reported to, its payload purged', async (t) => {
  const periods = LIFECYCLE_TEST_PERIODS;
  const server = await startTestServer({ periods, worker: false, limits: { inlinePayloadBytes: 0 } });
  t.teardown(() => server.close());
  const lab = await server.createMailbox();
  const gp = await server.createMailbox();
  const [lost, kept] = [await sendMessage(server, lab, gp, 'pathology result'), await sendMessage(server, lab, gp, 'another result')];
  const keptCheck = await server.connections.schedule.nextCheck(kept);
  t.truthy(keptCheck);

  const shards = (await prefixKeys(server)).filter((key) => key.includes('lifecycle-schedule:'));
  for (const shard of shards) await server.redis.zrem(shard, lost);
  t.is(await server.connections.schedule.nextCheck(lost), undefined);

  const now = server.services.now();
  t.deepEqual(await reconcileLifecycles(stores(server), now, { deleteOrphans: false }), { recordsChecked: 2, scheduleEntriesAdded: 1, orphanIds: 0 });
  t.deepEqual(await server.connections.schedule.nextCheck(lost), now, 'due now');
  t.deepEqual(await server.connections.schedule.nextCheck(kept), keptCheck, 'a scheduled check keeps its time');
  t.like(await reconcileLifecycles(stores(server), now, { deleteOrphans: false }), { scheduleEntriesAdded: 0 }, 'run again, nothing to add');

  // The workers sweep on, past the message's inbox expiry and payload retention.
  for (const ms of [periods.inboxExpiryMs + SECOND, periods.inboxExpiryMs + periods.payloadRetentionMs + 2 * SECOND]) {
    await runDueLifecycles({ ...server.services, now: () => new Date(Date.now() + ms) }, server.connections.schedule, silent);
  }
  const message = await server.services.messages.get(lost);
  t.is(message?.status, 'undeliverable', 'expired, not left waiting for ever');
  t.truthy(message?.reportId, 'its sender is told it was not delivered');
  t.deepEqual(await objectKeys(server, lost), [], 'its payload purged');
});

// Redis restored from a backup, the bucket kept: a message sent since has its chunks in the
// bucket and no record, reservation or schedule entry; so has an id no send ever reserved
// (objects put there by hand, or by a send whose reservation a restore lost as well).
test('admin reconcile finds the objects in the bucket of messages Redis has no record of, and their checks delete them', async (t) => {
  const server = await startTestServer({ periods: LIFECYCLE_TEST_PERIODS, worker: false, limits: { inlinePayloadBytes: 0 } });
  t.teardown(() => server.close());
  const lab = await server.createMailbox();
  const gp = await server.createMailbox();
  const before = await sendMessage(server, lab, gp, 'sent before the backup');
  const restore = await snapshot(server);
  const since = await sendMessage(server, lab, gp, 'sent after the backup');
  const neverReserved = randomUUID().replaceAll('-', '').toUpperCase();
  await server.connections.s3.send(new PutObjectCommand({ Bucket: server.bucket, Key: `messages/${neverReserved}/1`, Body: 'orphan' }));
  await restore();
  t.is(await server.services.messages.get(since), undefined, 'Redis as it was at the backup');

  const local = await ensureLocalServices();
  const env = {
    MESHBOX_REDIS_URL: local.redisUrl,
    MESHBOX_REDIS_PREFIX: server.redisPrefix,
    MESHBOX_S3_ENDPOINT: local.s3.endpoint,
    MESHBOX_S3_BUCKET: server.bucket,
    MESHBOX_S3_ACCESS_KEY_ID: local.s3.accessKeyId,
    MESHBOX_S3_SECRET_ACCESS_KEY: local.s3.secretAccessKey,
    MESHBOX_SECRET_KEY: TEST_SECRET_KEY,
  };
  const counted = await runSubprocess(['admin', 'reconcile'], { env });
  t.is(counted.code, 0, counted.stderr);
  t.is(counted.stdout, 'records checked 1, schedule entries added 0, orphan ids found 2 (left: --delete-orphans to delete their objects)\n', 'counted, not deleted, unless asked');
  const reconciled = await runSubprocess(['admin', 'reconcile', '--delete-orphans', '--json'], { env });
  t.is(reconciled.code, 0, reconciled.stderr);
  t.deepEqual(JSON.parse(reconciled.stdout), { recordsChecked: 1, scheduleEntriesAdded: 2, orphanIds: 2 });
  const text = await runSubprocess(['admin', 'reconcile', '--delete-orphans'], { env });
  t.is(text.stdout, 'records checked 1, schedule entries added 0, orphan ids found 2\n', 'their checks are due, not yet run; none is added twice');

  t.is(await runDueLifecycles(server.services, server.connections.schedule, silent), 2);
  t.deepEqual(await objectKeys(server, since), [], 'no payload of patient data kept with no record of it');
  t.deepEqual(await objectKeys(server, neverReserved), [], 'nor of an id never reserved');
  t.is((await objectKeys(server, before)).length, 1, 'a recorded message keeps its payload');
  t.like(JSON.parse((await runSubprocess(['admin', 'reconcile', '--json'], { env })).stdout), { orphanIds: 0 });
});

test("reconcile leaves alone, unless asked to delete orphans, the objects of another deployment that shares its bucket (another Redis prefix): a message waiting there is still downloaded", async (t) => {
  const bucket = `test-${randomUUID()}`;
  const other = await startTestServer({ bucket, worker: false, limits: { inlinePayloadBytes: 0 } });
  const here = await startTestServer({ bucket, worker: false, limits: { inlinePayloadBytes: 0 } });
  t.teardown(async () => {
    await here.close();
    await other.close();
  });
  const [lab, gp] = [await other.createMailbox(), await other.createMailbox()];
  const messageId = await sendMessage(other, lab, gp, 'a result waiting in the other deployment');
  t.deepEqual(await reconcileLifecycles(stores(here), here.services.now(), { deleteOrphans: false }), { recordsChecked: 0, scheduleEntriesAdded: 0, orphanIds: 1 });
  t.is(await runDueLifecycles(here.services, here.connections.schedule, silent), 0);
  t.is((await mailboxRequest(other, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` })).status, 200);
  t.is((await objectKeys(other, messageId)).length, 1);
});
