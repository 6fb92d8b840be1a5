import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { freePort, waitFor } from '../../scripts/services/processes.ts';
import { startRedisCluster } from '../../scripts/services/redis-cluster.ts';
import { buildAuthorizationHeader } from '../../shared/src/protocol/index.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import { openRedis } from '../../server/src/store/redis-client.ts';
import { ReplicaConfirmation, ReplicasBehindError, type ReplicaSetting } from '../../server/src/store/replica-confirmation.ts';
import { startTestServer, type TestMailbox, type TestServer } from '../support/harness.ts';
import { mailboxRequest, openMailboxRequest, type RawResponse, rawRequest, readText, sendMessage } from '../support/http.ts';
import { replicationOffset, startTestRedis, type TestRedis } from '../support/redis-server.ts';
import { type ServerProcess, startServerProcess } from '../support/server-process.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { tokenClaimed, tokenGivenBack } from '../support/token-claims.ts';

const eventually = (check: () => Promise<boolean>, seconds = 20): Promise<boolean> => waitFor(check, seconds * 1000, 50);

interface ReplicatedSetting {
  readonly primary: TestRedis;
  readonly replica: TestRedis;
  /** Between the replica and its primary: holding its answers holds the replication stream. */
  readonly replicationLink: TcpProxy;
  /** Between the server and the primary, to cut the server's connections. */
  readonly serverLink: TcpProxy;
  readonly server: TestServer;
  readonly lab: TestMailbox;
  readonly gp: TestMailbox;
  /** The gp's inbox as the replica holds it. */
  readonly inboxOnReplica: () => Promise<string[]>;
  readonly inboxOnPrimary: () => Promise<string[]>;
  /** Whether the replica has every write the primary has. */
  readonly replicaCaughtUp: () => Promise<boolean>;
  /**
   * Sentinel's failover: the replica becomes the primary the server's address leads to, its
   * connections cut; a replica of its own (chained until then) confirms its writes from then on.
   */
  readonly failOver: () => Promise<void>;
}

/** A primary with one replica (through a proxy that can hold the replication), and a server asking for that replica's confirmation. */
async function withReplicatedRedis(t: ExecutionContext, replicas: ReplicaSetting, run: (setting: ReplicatedSetting) => Promise<void>): Promise<void> {
  const [primary, replica, chained] = [await startTestRedis(), await startTestRedis(), await startTestRedis()];
  const replicationLink = await startTcpProxy(primary.port);
  const serverLink = await startTcpProxy(primary.port);
  let server: TestServer | undefined;
  try {
    t.true(await replica.replicate(replicationLink.port), 'the replica is in sync');
    t.true(await chained.replicate(replica.port), 'its own replica too');
    const started = await startTestServer({ redisUrl: `redis://127.0.0.1:${serverLink.port}`, worker: false, redisReplicas: replicas });
    server = started;
    const [lab, gp] = [await started.createMailbox(), await started.createMailbox()];
    // A lifecycle first, so that Redis knows the scripts, as it does in steady state: a script it
    // does not know is sent again whole after its first try is refused, by then behind the WAIT.
    // On a loaded host the replica may not confirm within a short timeout: the send is retried
    // with its token (told the message it recorded), the acknowledgement as it is.
    const warmUpToken = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: started.sharedKey });
    let warmUp = '';
    const warmUpSent = async (): Promise<boolean> => {
      const sent = await mailboxRequest(started, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox`, headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'W' }, body: 'warm-up', authorization: warmUpToken });
      if (sent.status === 202) warmUp = sent.json().message_id as string;
      return sent.status === 202;
    };
    t.true(await eventually(warmUpSent), 'the warm-up message is sent');
    const acknowledge = () => mailboxRequest(started, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${warmUp}/status/acknowledged` });
    t.true(await eventually(async () => (await acknowledge()).status === 200), 'and acknowledged');
    await started.settled();
    const inbox = redisKeys(server.redisPrefix).inbox(gp.id);
    await run({
      primary,
      replica,
      replicationLink,
      serverLink,
      server,
      lab,
      gp,
      inboxOnReplica: () => replica.admin.zrange(inbox, '0', '-1'),
      inboxOnPrimary: () => primary.admin.zrange(inbox, '0', '-1'),
      replicaCaughtUp: async () => (await replicationOffset(replica.admin, 'slave_repl_offset')) >= (await replicationOffset(primary.admin, 'master_repl_offset')),
      failOver: async () => {
        await replica.admin.replicaof('NO', 'ONE');
        // The old primary cut off from the new one (a replica that synced with it would drop its clients).
        await primary.admin.replicaof('127.0.0.1', String(await freePort()));
        // The server's address leads to the old primary a moment longer (a DNS name, a proxy, updated after).
        await sleep(500);
        serverLink.retarget(replica.port);
        await serverLink.cut();
        await serverLink.restore();
      },
    });
  } finally {
    replicationLink.releaseAnswers();
    await server?.close();
    await Promise.all([replicationLink.close(), serverLink.close()]);
    await Promise.all([primary.stop(), replica.stop(), chained.stop()]);
  }
}

function send(setting: ReplicatedSetting, body: string, authorization?: string): Promise<RawResponse> {
  const { server, lab, gp } = setting;
  return mailboxRequest(server, lab, {
    method: 'POST',
    path: `/messageexchange/${lab.id}/outbox`,
    headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'W' },
    body,
    ...(authorization ? { authorization } : {}),
  });
}

test('with a replica asked for, a send is answered 202 only once the replica holds its message, delivery included; an acknowledgement likewise', async (t) => {
  await withReplicatedRedis(t, { replicas: 1, timeoutMs: 5_000 }, async (setting) => {
    const { replicationLink, server, gp } = setting;
    replicationLink.holdAnswers();
    let answered = false;
    const sending = send(setting, 'a result').finally(() => (answered = true));
    t.true(await eventually(async () => (await setting.inboxOnPrimary()).length === 1), 'the primary has the message');
    t.deepEqual(await setting.inboxOnReplica(), [], 'the replica has not');
    t.false(answered, 'the send waits for the replica');

    replicationLink.releaseAnswers();
    const sent = await sending;
    t.is(sent.status, 202, sent.body.toString());
    const messageId = sent.json().message_id as string;
    // Read at once: no waiting for the replica here.
    t.deepEqual(await setting.inboxOnReplica(), [messageId], 'the replica had the delivery when the 202 came');
    t.is(await setting.replica.admin.exists(redisKeys(server.redisPrefix).message(messageId)), 1, 'and the record');

    replicationLink.holdAnswers();
    answered = false;
    const acknowledging = mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` }).finally(() => (answered = true));
    t.true(await eventually(async () => (await setting.inboxOnPrimary()).length === 0), 'the primary has the acknowledgement');
    t.false(answered, 'the acknowledgement waits for the replica');
    replicationLink.releaseAnswers();
    t.is((await acknowledging).status, 200);
    t.deepEqual(await setting.inboxOnReplica(), [], 'the replica had the acknowledgement when the 200 came');
  });
});

test('a replica behind past the timeout: the send is answered 503 (a MESH error), and its identical retry, once the replica has caught up, is told the message recorded, not sent twice', async (t) => {
  await withReplicatedRedis(t, { replicas: 1, timeoutMs: 200 }, async (setting) => {
    const { replicationLink, server, lab } = setting;
    replicationLink.holdAnswers();
    const token = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
    const refused = await send(setting, 'unconfirmed', token);
    t.is(refused.status, 503);
    t.like(refused.json().detail[0], { code: '503' });
    const [recorded] = await setting.inboxOnPrimary();
    t.truthy(recorded, 'the message is recorded on the primary');
    // Only a send, a chunk or an acknowledgement waits: a client's handshake and polls are served meanwhile.
    t.is((await mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}` })).status, 200);
    t.is((await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/inbox` })).status, 200);

    replicationLink.releaseAnswers();
    t.true(await eventually(setting.replicaCaughtUp), 'the replica catches up');
    const retried = await send(setting, 'unconfirmed', token);
    t.is(retried.status, 202, retried.body.toString());
    t.is(retried.json().message_id, recorded);
    t.deepEqual(await setting.inboxOnPrimary(), [recorded], 'one message');
  });
});

test('a failover while an acknowledgement was being confirmed: 503, though the replica of the new primary answers the WAIT sent again, as that primary never had it', async (t) => {
  await withReplicatedRedis(t, { replicas: 1, timeoutMs: 5_000 }, async (setting) => {
    const { replicationLink, server, gp, lab } = setting;
    const messageId = await sendMessage(server, lab, gp, 'to acknowledge');
    replicationLink.holdAnswers();
    const acknowledging = mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` });
    t.true(await eventually(async () => (await setting.inboxOnPrimary()).length === 0), 'the primary has the acknowledgement');
    await setting.failOver();
    const answer = await acknowledging;
    t.is(answer.status, 503, answer.body.toString());
    t.deepEqual(await setting.inboxOnReplica(), [messageId], 'rightly: the acknowledgement is lost');
    const retried = await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` });
    t.is(retried.status, 200, 'acknowledged again on the new primary, and confirmed');
    t.deepEqual(await setting.inboxOnReplica(), []);
  });
});

/**
 * A send recorded on the primary alone, its token's claim on the replica too, then a failover: the
 * retry with its token must send it. The WAIT is given 8 s (under the 10 s after which a silent
 * Redis connection is dropped): one that ran out before the failover on a loaded host would be
 * the refusal-then-failover case operations.md describes, whose retries stay 503.
 */
async function sendLostInFailover(t: ExecutionContext, clientStays: boolean): Promise<void> {
  await withReplicatedRedis(t, { replicas: 1, timeoutMs: 8_000 }, async (setting) => {
    const { replica, replicationLink, server, lab, gp } = setting;
    const token = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
    const path = `/messageexchange/${lab.id}/outbox`;
    const headers = { 'mex-To': gp.id, 'mex-WorkflowID': 'W', 'content-length': '12' };
    const request = openMailboxRequest(server, lab, { method: 'POST', path, headers, authorization: token });
    const answered = new Promise<IncomingMessage>((resolve, reject) => request.on('response', resolve).on('error', reject));
    if (!clientStays) answered.catch(() => undefined);
    // All but the body's last byte: the message cannot be recorded before the replication is held.
    request.write('lost in the');
    // The claim of the token reaches the replica; the message, sent after, does not.
    t.true(await tokenClaimed(replica.admin, server.redisPrefix, token), 'the replica has the claim');
    replicationLink.holdAnswers();
    request.end(' ');
    t.true(await eventually(async () => (await setting.inboxOnPrimary()).length === 1), 'the primary has the message');
    if (!clientStays) request.destroy();
    await setting.failOver();
    if (clientStays) {
      const answer = await answered;
      t.is(answer.statusCode, 503, await readText(answer));
    }
    t.true(await tokenGivenBack(replica.admin, server.redisPrefix, token), 'the token is given back on the new primary');
    t.deepEqual(await setting.inboxOnReplica(), [], 'the message is lost with the old primary');

    const retried = await mailboxRequest(server, lab, { method: 'POST', path, headers, body: 'lost in the ', authorization: token });
    t.is(retried.status, 202, retried.body.toString());
    await server.settled();
    t.deepEqual(await setting.inboxOnReplica(), [retried.json().message_id], 'sent by the retry, once');
  });
}

test('a send whose message a failover lost (its token claim kept): answered 503, and its identical retry sends it, once', async (t) => {
  await sendLostInFailover(t, true);
});

test('the same with the client gone before the answer: its retry sends the message, once', async (t) => {
  await sendLostInFailover(t, false);
});

test('with Redis refusing INFO to meshbox (an ACL), confirmations are not refused for good after a shortfall: a WAIT decides', async (t) => {
  const [primary, replica] = [await startTestRedis(), await startTestRedis()];
  await primary.admin.acl('SETUSER', 'meshbox', 'on', '>a-password', '~*', '&*', '+@all', '-info');
  const redis = openRedis({ redisUrl: `redis://meshbox:a-password@127.0.0.1:${primary.port}`, redisCluster: false }, { maxRetriesPerRequest: 1, enableReadyCheck: false });
  try {
    const confirmation = new ReplicaConfirmation(redis, { replicas: 1, timeoutMs: 100 });
    t.deepEqual(await confirmation.mastersShort(), [], 'nothing known without INFO');
    await t.throwsAsync(confirmation.confirm(confirmation.mark()), { instanceOf: ReplicasBehindError });
    t.true(await replica.replicate(primary.port));
    t.true(await eventually(() => confirmation.confirm(confirmation.mark()).then(() => true, () => false)), 'confirmed once the replica is there');
  } finally {
    redis.disconnect();
    await Promise.all([primary.stop(), replica.stop()]);
  }
});

test('confirmations asked in one turn share one WAIT; while the replicas are away they fail at once, without one, until Redis reports them back', async (t) => {
  const [primary, replica] = [await startTestRedis(), await startTestRedis()];
  const redis = openRedis({ redisUrl: primary.url, redisCluster: false }, { maxRetriesPerRequest: 1 });
  try {
    const waits = async () => Number(/cmdstat_wait:calls=(\d+)/.exec(await primary.admin.info('commandstats'))?.[1] ?? 0);
    const confirmation = new ReplicaConfirmation(redis, { replicas: 1, timeoutMs: 100 });
    const confirmAll = (count: number) => Promise.allSettled(Array.from({ length: count }, () => confirmation.confirm(confirmation.mark())));
    await redis.set('written', '1');
    const shared = await confirmAll(10);
    t.true(shared.every((outcome) => outcome.status === 'rejected' && outcome.reason instanceof ReplicasBehindError), 'no replica: none confirmed');
    t.is(await waits(), 1, 'one WAIT for the ten');
    t.true(confirmation.behind);
    for (let attempt = 0; attempt < 5; attempt++) await t.throwsAsync(confirmation.confirm(confirmation.mark()), { instanceOf: ReplicasBehindError });
    t.is(await waits(), 1, 'none more while Redis reports no replica');

    t.true(await replica.replicate(primary.port));
    // Asked again within a second or so: confirmed once Redis reports the replica.
    t.true(await eventually(() => confirmation.confirm(confirmation.mark()).then(() => true, () => false)), 'confirmed again');
    t.is(await waits(), 2);
    t.false(confirmation.behind);
  } finally {
    redis.disconnect();
    await Promise.all([primary.stop(), replica.stop()]);
  }
});

test('on a Redis Cluster, with replicas asked for that its masters do not have, sends are refused 503, and polls served', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshbox-cluster-'));
  const cluster = await startRedisCluster(dir, 3);
  let server: ServerProcess | undefined;
  try {
    server = await startServerProcess(
      { MESHBOX_REDIS_WAIT_REPLICAS: '1', MESHBOX_REDIS_WAIT_TIMEOUT_SECONDS: '0.05' },
      { redis: { redisUrl: cluster.redisUrl, redisCluster: true } },
    );
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    const refused = await mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox`, headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'W' }, body: 'x' });
    t.is(refused.status, 503, refused.body.toString());
    t.like(refused.json().detail[0], { code: '503' });
    t.is((await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox` })).status, 200);
    t.regex(server.output(), /0 of 1 replicas had them in time/);
    t.regex((await rawRequest(server, { path: '/metrics', clientCertificate: lab })).body.toString(), /^meshbox_redis_replicas_behind 1$/m, 'for monitoring');
    t.regex(server.output(), /fewer replicas online than MESHBOX_REDIS_WAIT_REPLICAS=1 asks for/, 'said at start');
  } finally {
    await server?.stop();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
