/**
 * `node scripts/bench/small-messages.ts [--seconds 4] [--rounds 3]`
 *
 * Small (1 KiB) messages through meshbox at concurrency 1, 16 and 64: sends accepted per
 * second, and full lifecycles (send, download, acknowledge: 3 requests) per second, with p50
 * and p99 latency. Baseline in the same run, with the same load client: a bare Node https
 * server with the same mutual-TLS setup answering 200 to the very request a send is (the client
 * works alike for every server; a plain POST of the body is measured too). Beside them, the floor of a send on
 * meshbox's stack (send-floor-server.ts: Koa, the MESH token checked, four Redis writes, nothing
 * else), to show what the stack itself leaves. Baseline, floor, sends and lifecycles take
 * turns for several rounds; each round's rates are compared with that round's baseline and the
 * median round counts: the baseline alone moves by a third between runs on a small shared
 * machine. A second meshbox, with Redis auto-pipelining on (operations.md), is sent the same
 * sends. The CPU time each process spends per request is measured too (Linux /proc), as it
 * shows where the two cores go. Last, what a poll costs on a kept-alive connection, on a new one
 * resuming a TLS session, and on a new one with a full handshake. Writes docs/benchmarks.md.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureLocalServices } from '../services/index.ts';
import { freePort } from '../services/processes.ts';
import { buildAuthorizationHeader } from '../../shared/src/protocol/index.ts';
import type { TestMailbox } from '../../test/support/harness.ts';
import { startServerProcess } from '../../test/support/server-process.ts';
import { measureCpu } from './cpu-time.ts';
import { call, type LoadResult, median, runLoad } from './load.ts';
import { machineDescription, writeReportSection } from './report.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
    'no-write': { type: 'boolean', default: false },
  },
});
const rounds = Number(values.rounds);
const durationMs = Number(values.seconds) * 1000;
const CONCURRENCY = [1, 16, 64] as const;
const PAIRS = 8;
const CONNECTION_CONCURRENCY = 8;
const payload = Buffer.alloc(1024, 'x');

const benchSettings = { MESHBOX_RATE_LIMIT_PER_SECOND: '0', MESHBOX_LOG_LEVEL: 'error' };
const server = await startServerProcess(benchSettings);
// Beside it, for its sends, meshbox with the setting operations.md discusses: ioredis's own batching instead of meshbox's.
const pipelinedServer = await startServerProcess({ ...benchSettings, MESHBOX_REDIS_AUTO_PIPELINING: 'true' });
// The server process runs on the local services (startServerProcess is given no other Redis).
const localServices = await ensureLocalServices();
const redisPid = localServices.pids.redis;
const benchServers: ChildProcess[] = [];

/** Starts one of the comparison servers beside meshbox, on meshbox's server certificate; its origin. */
async function startBenchServer(script: string, ...args: string[]): Promise<{ origin: string; pid: number }> {
  const port = await freePort();
  const pki = (file: string) => join(server.pkiDir, file);
  const child = spawn(process.execPath, [join(import.meta.dirname, script), String(port), pki('server.crt'), pki('server.key'), pki('ca.crt'), ...args], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  benchServers.push(child);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  return { origin: `https://127.0.0.1:${port}`, pid: child.pid ?? 0 };
}

/** A measurement: its load result and the CPU microseconds each process spent per request. */
interface Measured {
  readonly load: LoadResult;
  readonly cpuPerRequest: Record<string, number>;
}

async function measure(
  concurrency: number,
  pids: Record<string, number>,
  requestsPerOperation: number,
  operation: (worker: number) => Promise<boolean>,
): Promise<Measured> {
  const { result: load, seconds } = await measureCpu(pids, () => runLoad(concurrency, durationMs, operation));
  const requests = Math.max(1, load.operations * requestsPerOperation);
  return { load, cpuPerRequest: Object.fromEntries(Object.entries(seconds).map(([name, cpu]) => [name, (cpu * 1e6) / requests])) };
}

try {
  const pairsOn = async (on: typeof server) => {
    const made: { lab: TestMailbox; gp: TestMailbox; labAgent: Agent; gpAgent: Agent; sharedKey: string }[] = [];
    for (let i = 0; i < PAIRS; i++) {
      const [lab, gp] = [await on.createMailbox(), await on.createMailbox()];
      const agent = (mailbox: TestMailbox) => new Agent({ keepAlive: true, maxSockets: 64, ca: on.caPem, cert: mailbox.certPem, key: mailbox.keyPem });
      made.push({ lab, gp, labAgent: agent(lab), gpAgent: agent(gp), sharedKey: on.sharedKey });
    }
    return made;
  };
  const pairs = await pairsOn(server);
  const pipelinedPairs = await pairsOn(pipelinedServer);
  const floorSetting = join(server.pkiDir, 'send-floor.json');
  await writeFile(floorSetting, JSON.stringify({ sharedKey: server.sharedKey, passwords: Object.fromEntries(pairs.map(({ lab }) => [lab.id.toUpperCase(), lab.password])) }));
  const bare = await startBenchServer('bare-mtls-server.ts');
  const floor = await startBenchServer('send-floor-server.ts', localServices.redisUrl, floorSetting);
  const auth = (mailbox: TestMailbox, sharedKey = server.sharedKey) => ({
    authorization: buildAuthorizationHeader({ mailboxId: mailbox.id, password: mailbox.password, sharedKey }),
    accept: 'application/vnd.mesh.v2+json',
  });
  const pairOf = (worker: number, of = pairs) => of[worker % PAIRS]!;

  /** A send's request, its token signed afresh: what the client builds for meshbox, the floor and the baseline alike. */
  const sendRequest = (worker: number, of = pairs) => {
    const { lab, gp, sharedKey } = pairOf(worker, of);
    return {
      method: 'POST',
      path: `/messageexchange/${lab.id}/outbox`,
      headers: { ...auth(lab, sharedKey), 'mex-To': gp.id, 'mex-WorkflowID': 'BENCH', 'content-length': String(payload.length) },
      body: payload,
    };
  };
  const baseline = (worker: number) => call(pairOf(worker).labAgent, bare.origin, sendRequest(worker)).then((r) => r.status === 200);
  const plainPost = (worker: number) =>
    call(pairOf(worker).labAgent, bare.origin, { method: 'POST', path: '/', body: payload }).then((r) => r.status === 200);
  const send = async (worker: number, origin = server.origin, of = pairs): Promise<string | undefined> => {
    const response = await call(pairOf(worker, of).labAgent, origin, sendRequest(worker, of));
    return response.status === 202 ? (JSON.parse(response.body) as { message_id: string }).message_id : undefined;
  };
  const sent = async (worker: number): Promise<boolean> => (await send(worker)) !== undefined;
  const sentToFloor = async (worker: number): Promise<boolean> => (await send(worker, floor.origin)) !== undefined;
  const sentPipelined = async (worker: number): Promise<boolean> => (await send(worker, pipelinedServer.origin, pipelinedPairs)) !== undefined;
  const lifecycle = async (worker: number): Promise<boolean> => {
    const { gp, gpAgent } = pairOf(worker);
    const messageId = await send(worker);
    if (!messageId) return false;
    const download = await call(gpAgent, server.origin, { method: 'GET', path: `/messageexchange/${gp.id}/inbox/${messageId}`, headers: auth(gp) });
    const ack = await call(gpAgent, server.origin, {
      method: 'PUT',
      path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged`,
      headers: auth(gp),
    });
    return download.status === 200 && download.body.length === payload.length && ack.status === 200;
  };

  /** The round with the median rate (its latencies and CPU figures come with it). */
  const medianRun = (runs: Measured[]): Measured => [...runs].sort((a, b) => a.load.perSecond - b.load.perSecond)[Math.floor(runs.length / 2)]!;
  interface Row {
    readonly concurrency: number;
    readonly baseline: Measured;
    readonly plainPost: Measured;
    readonly floor: Measured;
    readonly sends: Measured;
    readonly lifecycles: Measured;
    readonly sendsPipelined: Measured;
    /** Medians of each round's rate over that round's baseline (lifecycles counted in requests). */
    readonly floorRatio: number;
    readonly sendRatio: number;
    readonly sendPipelinedRatio: number;
    readonly lifecycleRatio: number;
    /** Sends and lifecycle requests over the bare server's rate for a plain POST of the body. */
    readonly sendToPlainRatio: number;
    readonly lifecycleToPlainRatio: number;
    readonly errors: number;
  }
  const results: Row[] = [];
  const meshboxPids = { server: server.pid(), redis: redisPid, client: process.pid };
  const bareServerPids = { server: bare.pid, client: process.pid };
  const floorPids = { server: floor.pid, redis: redisPid, client: process.pid };
  const pipelinedPids = { server: pipelinedServer.pid(), redis: redisPid, client: process.pid };
  for (const concurrency of CONCURRENCY) {
    // Connections opened and code compiled before anything is measured.
    for (const warmUp of [baseline, plainPost, sentToFloor, sent, lifecycle, sentPipelined]) await runLoad(concurrency, 1000, warmUp);
    const runs = { baseline: [] as Measured[], plainPost: [] as Measured[], floor: [] as Measured[], sends: [] as Measured[], lifecycles: [] as Measured[], sendsPipelined: [] as Measured[] };
    for (let round = 0; round < rounds; round++) {
      runs.baseline.push(await measure(concurrency, bareServerPids, 1, baseline));
      runs.plainPost.push(await measure(concurrency, bareServerPids, 1, plainPost));
      runs.floor.push(await measure(concurrency, floorPids, 1, sentToFloor));
      runs.sends.push(await measure(concurrency, meshboxPids, 1, sent));
      runs.lifecycles.push(await measure(concurrency, meshboxPids, 3, lifecycle));
      runs.sendsPipelined.push(await measure(concurrency, pipelinedPids, 1, sentPipelined));
    }
    const all = [...runs.baseline, ...runs.plainPost, ...runs.floor, ...runs.sends, ...runs.lifecycles, ...runs.sendsPipelined];
    const ratios = (of: Measured[], requestsPerOperation: number, to = runs.baseline) =>
      median(of.map((run, round) => (run.load.perSecond * requestsPerOperation) / to[round]!.load.perSecond));
    results.push({
      concurrency,
      baseline: medianRun(runs.baseline),
      plainPost: medianRun(runs.plainPost),
      floor: medianRun(runs.floor),
      sends: medianRun(runs.sends),
      lifecycles: medianRun(runs.lifecycles),
      sendsPipelined: medianRun(runs.sendsPipelined),
      floorRatio: ratios(runs.floor, 1),
      sendRatio: ratios(runs.sends, 1),
      sendPipelinedRatio: ratios(runs.sendsPipelined, 1),
      lifecycleRatio: ratios(runs.lifecycles, 3),
      sendToPlainRatio: ratios(runs.sends, 1, runs.plainPost),
      lifecycleToPlainRatio: ratios(runs.lifecycles, 3, runs.plainPost),
      errors: all.reduce((sum, run) => sum + run.load.errors, 0),
    });
    console.error(`concurrency ${concurrency} done`);
  }

  // Polls one request a connection: what a client that does not keep its connection open costs.
  const { lab: poller } = pairs[0]!;
  const connectionModes = [
    ['kept alive', { keepAlive: true }],
    ['new connection, resumed TLS session', { keepAlive: false, maxCachedSessions: 100 }],
    ['new connection, full TLS handshake', { keepAlive: false, maxCachedSessions: 0 }],
  ] as const;
  const connections: { readonly mode: string; readonly bare: Measured; readonly poll: Measured }[] = [];
  for (const [mode, agentOptions] of connectionModes) {
    const agent = new Agent({ ...agentOptions, ca: server.caPem, cert: poller.certPem, key: poller.keyPem });
    const bareRequest = () => call(agent, bare.origin, { method: 'GET', path: '/' }).then((r) => r.status === 200);
    const poll = () => call(agent, server.origin, { method: 'GET', path: `/messageexchange/${poller.id}/inbox`, headers: auth(poller) }).then((r) => r.status === 200);
    for (const warmUp of [bareRequest, poll]) await runLoad(CONNECTION_CONCURRENCY, 1000, warmUp);
    const runs = { bare: [] as Measured[], poll: [] as Measured[] };
    for (let round = 0; round < rounds; round++) {
      runs.bare.push(await measure(CONNECTION_CONCURRENCY, bareServerPids, 1, bareRequest));
      runs.poll.push(await measure(CONNECTION_CONCURRENCY, meshboxPids, 1, poll));
    }
    connections.push({ mode, bare: medianRun(runs.bare), poll: medianRun(runs.poll) });
    agent.destroy();
  }
  console.error('connections done');

  const f = (n: number, digits = 0) => n.toFixed(digits);
  const pct = (ratio: number) => `${(ratio * 100).toFixed(0)}%`;
  const cpu = (run: Measured, ...names: string[]) => names.map((name) => f(run.cpuPerRequest[name] ?? 0)).join(' / ');
  const lines = [
    '## Small messages (`scripts/bench/small-messages.ts`)',
    '',
    `1 KiB messages, ${PAIRS} sender/recipient pairs, ${durationMs / 1000} s per measurement, one Node load client;`,
    `${rounds} rounds of baseline, plain POST, send floor, sends, lifecycles and sends with auto-pipelining in turn. Rates and latencies: the median round;`,
    "ratios: the median of each round's rate over that round's baseline.",
    'meshbox (its own process), Redis, the S3 server and the client all on this machine. Baseline:',
    'a bare Node https server with the same mutual-TLS setup answering 200, same client, same run,',
    "sent the very request a send is (its path, MESH headers with a token signed afresh, the 1 KiB",
    'body), so that the client does the same work for every server compared. Plain POST: the same',
    'bare server sent only the body (no MESH headers, no token), for comparison with earlier runs.',
    'A lifecycle is send + download + acknowledge (3 requests). The per-mailbox rate limit is off',
    '(MESHBOX_RATE_LIMIT_PER_SECOND=0): eight mailboxes would otherwise be throttled by design.',
    'Send floor: the same send to `send-floor-server.ts`, a Koa app behind the same mutual TLS that',
    "checks the MESH token (HMAC, and in Redis that it is new), stores the message in four plain Redis",
    'writes and answers 202: what the stack costs before any of meshbox\'s own work.',
    'meshbox runs with its defaults. Sends with auto-pipelining: the same sends to a second',
    "meshbox process with MESHBOX_REDIS_AUTO_PIPELINING=true (ioredis's batching, one batch in flight at a time, instead of",
    "meshbox's write per turn of the event loop; operations.md).",
    '',
    `Machine: ${machineDescription()}.`,
    '',
    '| concurrency | baseline req/s | plain POST req/s | send floor/s | floor vs baseline | sends/s | sends vs baseline (vs plain POST) | send p50 / p99 ms | lifecycles/s | lifecycle req/s vs baseline (vs plain POST) | lifecycle p50 / p99 ms | sends with auto-pipelining/s | vs baseline |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...results.map(
      ({ concurrency, baseline: { load: b }, plainPost: { load: pp }, floor: { load: fl }, sends: { load: s }, lifecycles: { load: l }, sendsPipelined: { load: d }, ...ratio }) =>
        `| ${concurrency} | ${f(b.perSecond)} | ${f(pp.perSecond)} | ${f(fl.perSecond)} | ${pct(ratio.floorRatio)} | ${f(s.perSecond)} | ${pct(ratio.sendRatio)} (${pct(ratio.sendToPlainRatio)}) | ${f(s.p50Ms, 1)} / ${f(s.p99Ms, 1)} | ${f(l.perSecond)} | ${pct(ratio.lifecycleRatio)} (${pct(ratio.lifecycleToPlainRatio)}) | ${f(l.p50Ms, 1)} / ${f(l.p99Ms, 1)} | ${f(d.perSecond)} | ${pct(ratio.sendPipelinedRatio)} |`,
    ),
    '',
    `Errors: ${results.reduce((sum, r) => sum + r.errors, 0)}.`,
    '',
    'CPU time per request (µs), median round: where the two cores go.',
    '',
    '| concurrency | baseline: server / client | plain POST: server / client | send floor: server / Redis / client | send: meshbox / Redis / client | lifecycle request: meshbox / Redis / client | send with auto-pipelining: meshbox / Redis / client |',
    '|---|---|---|---|---|---|---|',
    ...results.map(
      ({ concurrency, baseline: b, plainPost: pp, floor: fl, sends: s, lifecycles: l, sendsPipelined: d }) =>
        `| ${concurrency} | ${cpu(b, 'server', 'client')} | ${cpu(pp, 'server', 'client')} | ${cpu(fl, 'server', 'redis', 'client')} | ${cpu(s, 'server', 'redis', 'client')} | ${cpu(l, 'server', 'redis', 'client')} | ${cpu(d, 'server', 'redis', 'client')} |`,
    ),
    '',
    `Connections: ${CONNECTION_CONCURRENCY} clients polling (an inbox list, empty) one request a connection, against the`,
    "bare server answering on the same connections; median round. A new connection's TLS handshake",
    'costs far more than the request it carries.',
    '',
    '| connection | bare server req/s | bare server µs CPU each | meshbox polls/s | meshbox µs CPU each | Redis µs CPU each |',
    '|---|---|---|---|---|---|',
    ...connections.map(
      ({ mode, bare: b, poll: p }) =>
        `| ${mode} | ${f(b.load.perSecond)} | ${f(b.cpuPerRequest.server ?? 0)} | ${f(p.load.perSecond)} | ${f(p.cpuPerRequest.server ?? 0)} | ${f(p.cpuPerRequest.redis ?? 0)} |`,
    ),
  ];
  console.log(lines.join('\n'));
  if (!values['no-write']) await writeReportSection('small-messages', lines.join('\n'));
} finally {
  for (const child of benchServers) {
    if (child.exitCode !== null) continue;
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
  await server.stop();
  await pipelinedServer.stop();
}
