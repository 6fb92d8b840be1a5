import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { Cluster, Redis } from 'ioredis';
import { startRedisCluster } from '../../scripts/services/redis-cluster.ts';
import { waitFor } from '../../scripts/services/processes.ts';
import { connectionsLostBy, openRedis, pingEveryMaster, type RedisTarget } from '../../server/src/store/redis-client.ts';
import { within } from '../../server/src/time-limit.ts';
import { mailboxRequest, rawRequest, sendMessage } from '../support/http.ts';
import { type ServerProcess, startServerProcess, viaServeCommand } from '../support/server-process.ts';

// Long enough for the messages the test collects to be collected first on a loaded machine (a
// message's first check, at the inbox expiry, expires it uncollected); short enough to wait for
// the one it leaves, sent first so that its expiry runs while the rest of the test does.
const periods = { MESHBOX_INBOX_EXPIRY_SECONDS: '10', MESHBOX_RATE_LIMIT_PER_SECOND: '0' };

/**
 * Two API processes and two workers of one deployment: whatever one process does, the others
 * see, and each lifecycle job takes effect once.
 */
async function twoApisAndTwoWorkers(
  t: ExecutionContext,
  redis: RedisTarget | undefined,
  // Runs while the deployment's state is still there (stopping deletes it).
  beforeStop: () => Promise<void> = async () => {},
): Promise<void> {
  const processes: ServerProcess[] = [];
  try {
    const apiA = await startServerProcess({ ...periods, MESHBOX_ROLE: 'api' }, redis ? { redis } : {});
    processes.push(apiA);
    const { deployment } = apiA;
    const apiB = await startServerProcess({ ...periods, MESHBOX_ROLE: 'api' }, { deployment });
    processes.push(apiB);
    for (let i = 0; i < 2; i++) processes.push(await startServerProcess({ ...periods, MESHBOX_ROLE: 'worker' }, { deployment }));
    const [lab, gp] = [await apiA.createMailbox(), await apiA.createMailbox()];
    const ignored = await sendMessage(apiB, lab, gp, 'never collected');

    const collected = await sendMessage(apiA, lab, gp, 'sent through A');
    // Its delivery lands a moment after A's answer: ordered after it on A's Redis connection, not on B's.
    const listedOnB = async () => (await mailboxRequest(apiB, gp, { path: `/messageexchange/${gp.id}/inbox` })).json().messages.includes(collected);
    t.true(await waitFor(listedOnB, 5_000));
    const download = await mailboxRequest(apiB, gp, { path: `/messageexchange/${gp.id}/inbox/${collected}` });
    t.is(download.body.toString(), 'sent through A');
    t.is((await mailboxRequest(apiB, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${collected}/status/acknowledged` })).status, 200);
    t.false((await mailboxRequest(apiA, gp, { path: `/messageexchange/${gp.id}/inbox` })).json().messages.includes(collected));

    // Chunks (too big to be kept in Redis: they go to S3) uploaded through either process.
    const chunks = [randomBytes(70_000), randomBytes(70_000), randomBytes(999)];
    const upload = (server: ServerProcess, n: number, path: string) =>
      mailboxRequest(server, lab, {
        method: 'POST',
        path,
        headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'CHUNKS', 'mex-Chunk-Range': `${n}:3` },
        body: chunks[n - 1]!,
      });
    const first = await upload(apiA, 1, `/messageexchange/${lab.id}/outbox`);
    t.is(first.status, 202);
    const chunked: string = first.json().message_id;
    t.is((await upload(apiB, 3, `/messageexchange/${lab.id}/outbox/${chunked}/3`)).status, 202);
    t.false((await mailboxRequest(apiA, gp, { path: `/messageexchange/${gp.id}/inbox` })).json().messages.includes(chunked));
    t.is((await upload(apiA, 2, `/messageexchange/${lab.id}/outbox/${chunked}/2`)).status, 202);
    t.true((await mailboxRequest(apiB, gp, { path: `/messageexchange/${gp.id}/inbox` })).json().messages.includes(chunked));
    for (const [n, server] of [[1, apiB], [2, apiA], [3, apiB]] as const) {
      const path = `/messageexchange/${gp.id}/inbox/${chunked}${n === 1 ? '' : `/${n}`}`;
      const chunk = await mailboxRequest(server, gp, { path });
      t.is(chunk.status, n === 3 ? 200 : 206, `chunk ${n}`);
      t.true(chunk.body.equals(chunks[n - 1]!), `chunk ${n} byte-exact`);
    }
    t.is((await mailboxRequest(apiA, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${chunked}/status/acknowledged` })).status, 200);

    let status = '';
    for (let attempt = 0; attempt < 100 && status !== 'undeliverable'; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      status = (await mailboxRequest(apiA, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${ignored}` })).json().status;
    }
    t.is(status, 'undeliverable', 'a worker process expired it');
    t.deepEqual((await mailboxRequest(apiB, gp, { path: `/messageexchange/${gp.id}/inbox` })).json().messages, [], 'it left the inbox');
    const labInbox = (await mailboxRequest(apiA, lab, { path: `/messageexchange/${lab.id}/inbox` })).json().messages;
    t.is(labInbox.length, 1, 'exactly one non-delivery report from two workers');
    const report = await mailboxRequest(apiB, lab, { path: `/messageexchange/${lab.id}/inbox/${labInbox[0]}` });
    t.is(report.headers['mex-messagetype'], 'REPORT');
    t.is(report.headers['mex-linkedmsgid'], ignored);

    const metricsOf = async (server: ServerProcess) => (await rawRequest(server, { path: '/metrics', clientCertificate: lab })).body.toString();
    const apiMetrics = await metricsOf(apiA);
    t.regex(apiMetrics, /meshbox_http_requests_total\{route="\/messageexchange\/:mailbox\/outbox",method="POST",status="202"\} \d+/);
    t.notRegex(apiMetrics, /meshbox_queue_jobs\{/, 'the shared schedule is counted by workers only (a sum over processes would multiply it)');
    t.notRegex(apiMetrics, /meshbox_job_duration_seconds_count\{/, 'API processes run no jobs');
    t.notRegex(apiMetrics, /meshbox_crl_next_update_timestamp_seconds/, 'no CRL, no date');
    const workerMetrics = await Promise.all(processes.slice(2).map(metricsOf));
    const workerRuns = workerMetrics.map((text) => Number(/meshbox_job_duration_seconds_count\{queue="message-lifecycle"\} (\d+)/.exec(text)?.[1] ?? 0));
    t.true(workerRuns.reduce((a, b) => a + b, 0) >= 1, `worker job runs ${workerRuns.join(', ')}`);
    for (const text of workerMetrics) {
      t.regex(text, /meshbox_queue_jobs\{queue="message-lifecycle",state="scheduled"\} \d+/);
      t.regex(text, /meshbox_job_failures_total\{queue="message-lifecycle"\} 0/, 'there from the start');
    }
    t.true(
      workerMetrics.some((text) => Number(/meshbox_job_last_completed_timestamp_seconds\{queue="message-lifecycle"\} (\S+)/.exec(text)?.[1]) > Date.now() / 1000 - 60),
      'a sweep completed within the minute',
    );
    const workerOnly = await mailboxRequest(processes[2]!, lab, { path: `/messageexchange/${lab.id}/inbox` });
    t.is(workerOnly.status, 404, 'a worker process serves no MESH endpoints');
    await beforeStop();
  } finally {
    // Shown only when the test fails: whatever the processes logged (warnings and errors) says why.
    for (const [index, server] of processes.entries()) if (server.output()) t.log(`process ${index} logged:\n${server.output()}`);
    for (const server of processes.reverse()) await server.stop();
  }
}

test('two API processes and two workers share one Redis and bucket: sent via A, read via B, jobs take effect once; metrics per process', async (t) => {
  await twoApisAndTwoWorkers(t, undefined);
});

test('the same on a Redis Cluster of three masters, with the state spread over them', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshbox-cluster-'));
  const cluster = await startRedisCluster(dir, 3);
  try {
    const keysPerNode = () =>
      Promise.all(
        cluster.ports.map(async (port) => {
          const node = new Redis(port, '127.0.0.1');
          try {
            return await node.dbsize();
          } finally {
            node.disconnect();
          }
        }),
      );
    // A node of it taken for a standalone Redis would answer most keys with MOVED.
    const [firstNode] = cluster.ports;
    const mistaken = await t.throwsAsync(startServerProcess({}, { redis: { redisUrl: `redis://127.0.0.1:${firstNode}`, redisCluster: false } }));
    t.regex(mistaken?.message ?? '', /is a node of a Redis Cluster: set MESHBOX_REDIS_CLUSTER=true/);
    await twoApisAndTwoWorkers(t, { redisUrl: cluster.redisUrl, redisCluster: true }, async () => {
      const keys = await keysPerNode();
      // Hash tags group each operation's keys, not the whole state: it lands on several masters.
      t.true(keys.filter((count) => count > 0).length > 1, `keys per node: ${keys.join(', ')}`);
    });
    t.deepEqual(await keysPerNode(), [0, 0, 0], 'a stopped deployment leaves no key on any node');
  } finally {
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('on a Redis Cluster, readiness asks every master: one down fails it at once, and it passes again once the node is back', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshbox-cluster-'));
  const cluster = await startRedisCluster(dir, 3);
  const connect = () => {
    const client = openRedis({ redisUrl: cluster.redisUrl, redisCluster: true }, { maxRetriesPerRequest: 1 });
    client.on('error', () => {});
    if (!(client instanceof Cluster)) throw new Error('not a Redis Cluster client');
    return client;
  };
  const readyOn = (client: ReturnType<typeof connect>): Promise<boolean> => within(pingEveryMaster(client), 3_000).then(() => true, () => false);
  // A running server's client (which drops a node whose connection ended), and a fresh one.
  const running = connect();
  const readyAfresh = async (): Promise<boolean> => {
    const client = connect();
    try {
      return await readyOn(client);
    } finally {
      client.disconnect();
    }
  };
  // A loaded machine can take seconds over a look: being ready is waited for, not refused at once.
  const becomesReady = async (): Promise<boolean> => {
    for (let attempt = 0; attempt < 60; attempt++) {
      if ((await readyOn(running)) && (await readyAfresh())) return true;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    return false;
  };
  try {
    t.true(await becomesReady(), 'all three masters up');
    const masters = running.nodes('master');
    const pings = Promise.all(masters.map((node) => node.ping()));
    t.deepEqual(
      masters.map((node) => node.stream.writableLength > 0),
      [true, true, true],
      "each master's connection holds the turn's commands until its end",
    );
    await pings;
    const [down] = cluster.ports;
    const lostBefore = connectionsLostBy(running);
    cluster.killNode(down!);
    // Once the running client has seen the connection end, the node it asks the slot owners about
    // is no longer one it knows (until then a PING to it fails as well, and the check is not the one meant).
    const known = () => running.nodes('master').some((node) => node.options.port === down);
    t.true(await waitFor(async () => !known(), 30_000, 20), 'the running client has dropped the node killed');
    // A command on it may run again on the node now holding its slots, connected already: counted all the same.
    t.true(connectionsLostBy(running) > lostBefore, "the node's connection counted as lost");
    t.false(await readyOn(running), 'a PING to any one node would still answer');
    t.false(await readyAfresh());
    await cluster.restartNode(down!);
    t.true(await becomesReady(), 'the node back');
  } finally {
    running.disconnect();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});

test('meshbox serve takes its role from MESHBOX_ROLE unless --role is given (as an image run with -e MESHBOX_ROLE=worker does)', async (t) => {
  const processes: ServerProcess[] = [];
  try {
    const api = await startServerProcess({ MESHBOX_ROLE: 'api' }, { command: viaServeCommand() });
    processes.push(api);
    const worker = await startServerProcess({ MESHBOX_ROLE: 'worker' }, { command: viaServeCommand(), deployment: api.deployment });
    processes.push(worker);
    const overridden = await startServerProcess({ MESHBOX_ROLE: 'worker' }, { command: viaServeCommand('--role', 'api'), deployment: api.deployment });
    processes.push(overridden);
    const mailbox = await api.createMailbox();
    const inbox = (server: ServerProcess) => mailboxRequest(server, mailbox, { path: `/messageexchange/${mailbox.id}/inbox` });
    t.is((await inbox(api)).status, 200);
    t.is((await inbox(worker)).status, 404, 'MESHBOX_ROLE=worker: no MESH endpoints');
    t.is((await inbox(overridden)).status, 200, '--role api over MESHBOX_ROLE=worker');
  } finally {
    for (const server of processes.reverse()) await server.stop();
  }
});
