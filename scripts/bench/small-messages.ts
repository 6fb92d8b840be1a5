/**
 * `node scripts/bench/small-messages.ts [--seconds 4] [--rounds 3]`
 *
 * Small (1 KiB) messages through meshbox at concurrency 1, 16 and 64: sends accepted per
 * second, and full lifecycles (send, download, acknowledge: 3 requests) per second, with p50
 * and p99 latency. Baseline in the same run, with the same load client: a bare Node https
 * server with the same mutual-TLS setup answering 200. Baseline, sends and lifecycles take
 * turns for several rounds and the median round of each counts: the baseline alone moves by
 * a third between runs on a small shared machine. Writes docs/benchmarks.md.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../services/processes.ts';
import { buildAuthorizationHeader } from '../../shared/src/protocol/index.ts';
import type { TestMailbox } from '../../test/support/harness.ts';
import { startServerProcess } from '../../test/support/server-process.ts';
import { call, type LoadResult, runLoad } from './load.ts';
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
const payload = Buffer.alloc(1024, 'x');

const server = await startServerProcess({ MESHBOX_RATE_LIMIT_PER_SECOND: '0', MESHBOX_LOG_LEVEL: 'error' });
const basePort = await freePort();
const bare = spawn(process.execPath, [
  join(import.meta.dirname, 'bare-mtls-server.ts'),
  String(basePort),
  join(server.pkiDir, 'server.crt'),
  join(server.pkiDir, 'server.key'),
  join(server.pkiDir, 'ca.crt'),
]);
await new Promise((resolve) => setTimeout(resolve, 500));

try {
  const pairs: { lab: TestMailbox; gp: TestMailbox; labAgent: Agent; gpAgent: Agent }[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    const agent = (mailbox: TestMailbox) =>
      new Agent({ keepAlive: true, maxSockets: 64, ca: server.caPem, cert: mailbox.certPem, key: mailbox.keyPem });
    pairs.push({ lab, gp, labAgent: agent(lab), gpAgent: agent(gp) });
  }
  const auth = (mailbox: TestMailbox) => ({
    authorization: buildAuthorizationHeader({ mailboxId: mailbox.id, password: mailbox.password, sharedKey: server.sharedKey }),
    accept: 'application/vnd.mesh.v2+json',
  });
  const pairOf = (worker: number) => pairs[worker % PAIRS]!;

  const baseline = (worker: number) =>
    call(pairOf(worker).labAgent, `https://127.0.0.1:${basePort}`, { method: 'POST', path: '/', body: payload }).then((r) => r.status === 200);
  const send = async (worker: number): Promise<string | undefined> => {
    const { lab, gp, labAgent } = pairOf(worker);
    const response = await call(labAgent, server.origin, {
      method: 'POST',
      path: `/messageexchange/${lab.id}/outbox`,
      headers: { ...auth(lab), 'mex-To': gp.id, 'mex-WorkflowID': 'BENCH', 'content-length': String(payload.length) },
      body: payload,
    });
    return response.status === 202 ? (JSON.parse(response.body) as { message_id: string }).message_id : undefined;
  };
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

  /** The run with the median rate (its latencies come with it). */
  const medianRun = (runs: LoadResult[]): LoadResult => [...runs].sort((a, b) => a.perSecond - b.perSecond)[Math.floor(runs.length / 2)]!;
  const results: { concurrency: number; baseline: LoadResult; sends: LoadResult; lifecycles: LoadResult; errors: number }[] = [];
  for (const concurrency of CONCURRENCY) {
    await runLoad(concurrency, 500, baseline); // warm up connections
    const runs = { baseline: [] as LoadResult[], sends: [] as LoadResult[], lifecycles: [] as LoadResult[] };
    for (let round = 0; round < rounds; round++) {
      runs.baseline.push(await runLoad(concurrency, durationMs, baseline));
      runs.sends.push(await runLoad(concurrency, durationMs, async (worker) => (await send(worker)) !== undefined));
      runs.lifecycles.push(await runLoad(concurrency, durationMs, lifecycle));
    }
    const errors = [...runs.baseline, ...runs.sends, ...runs.lifecycles].reduce((sum, run) => sum + run.errors, 0);
    results.push({ concurrency, baseline: medianRun(runs.baseline), sends: medianRun(runs.sends), lifecycles: medianRun(runs.lifecycles), errors });
    console.error(`concurrency ${concurrency} done`);
  }

  const f = (n: number, digits = 0) => n.toFixed(digits);
  const pct = (a: number, b: number) => `${((a / b) * 100).toFixed(0)}%`;
  const lines = [
    '## Small messages (`scripts/bench/small-messages.ts`)',
    '',
    `1 KiB messages, ${PAIRS} sender/recipient pairs, ${durationMs / 1000} s per measurement, one Node load client;`,
    `${rounds} rounds of baseline, sends and lifecycles in turn; the median round of each is shown.`,
    'meshbox (its own process), Redis, the S3 server and the client all on this machine. Baseline:',
    'a bare Node https server with the same mutual-TLS setup answering 200, same client, same run.',
    'A lifecycle is send + download + acknowledge (3 requests). The per-mailbox rate limit is off',
    '(MESHBOX_RATE_LIMIT_PER_SECOND=0): eight mailboxes would otherwise be throttled by design.',
    '',
    `Machine: ${machineDescription()}.`,
    '',
    '| concurrency | baseline req/s | sends/s | sends vs baseline | send p50 / p99 ms | lifecycles/s | lifecycle req/s vs baseline | lifecycle p50 / p99 ms |',
    '|---|---|---|---|---|---|---|---|',
    ...results.map(
      ({ concurrency, baseline: b, sends: s, lifecycles: l }) =>
        `| ${concurrency} | ${f(b.perSecond)} | ${f(s.perSecond)} | ${pct(s.perSecond, b.perSecond)} | ${f(s.p50Ms, 1)} / ${f(s.p99Ms, 1)} | ${f(l.perSecond)} | ${pct(l.perSecond * 3, b.perSecond)} | ${f(l.p50Ms, 1)} / ${f(l.p99Ms, 1)} |`,
    ),
    '',
    `Errors: ${results.reduce((sum, r) => sum + r.errors, 0)}.`,
  ];
  console.log(lines.join('\n'));
  if (!values['no-write']) await writeReportSection('small-messages', lines.join('\n'));
} finally {
  bare.kill('SIGTERM');
  await once(bare, 'exit');
  await server.stop();
}
