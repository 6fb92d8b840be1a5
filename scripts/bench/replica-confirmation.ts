/**
 * `node scripts/bench/replica-confirmation.ts [--seconds 4] [--rounds 4]`
 *
 * What MESHBOX_REDIS_WAIT_REPLICAS=1 costs a send (operations.md): 1 KiB sends at concurrency 1,
 * 16 and 64 to two meshbox processes on the development Redis, one with its defaults, the other
 * answering each send only once a replica of that Redis (on this machine, started here) has it;
 * rounds alternating, with the CPU time per send of each server and of Redis. The replica being on
 * the same machine, a network's round trip to it is not in the figures. Writes docs/benchmarks.md.
 */
import { Agent } from 'node:https';
import { parseArgs } from 'node:util';
import { ensureLocalServices } from '../services/index.ts';
import { buildAuthorizationHeader } from '../../shared/src/protocol/index.ts';
import type { TestMailbox } from '../../test/support/harness.ts';
import { startTestRedis } from '../../test/support/redis-server.ts';
import { type ServerProcess, startServerProcess } from '../../test/support/server-process.ts';
import { measureCpu } from './cpu-time.ts';
import { call, median, runLoad } from './load.ts';
import { machineDescription, writeReportSection } from './report.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '4' },
    'no-write': { type: 'boolean', default: false },
  },
});
const durationMs = Number(values.seconds) * 1000;
const rounds = Number(values.rounds);
const CONCURRENCY = [1, 16, 64] as const;
const PAIRS = 8;
const payload = Buffer.alloc(1024, 'x');

const local = await ensureLocalServices();
const replica = await startTestRedis();
const servers: ServerProcess[] = [];
try {
  if (!(await replica.replicate(Number(new URL(local.redisUrl).port)))) throw new Error('the replica did not sync');
  const settings = { MESHBOX_RATE_LIMIT_PER_SECOND: '0', MESHBOX_LOG_LEVEL: 'error' };
  const plain = await startServerProcess(settings);
  servers.push(plain);
  const confirming = await startServerProcess({ ...settings, MESHBOX_REDIS_WAIT_REPLICAS: '1' });
  servers.push(confirming);

  /** Sends from eight senders to eight recipients of `server`, each with a fresh token. */
  const sender = async (server: ServerProcess) => {
    const pairs: { lab: TestMailbox; gp: TestMailbox; agent: Agent }[] = [];
    for (let i = 0; i < PAIRS; i++) {
      const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
      pairs.push({ lab, gp, agent: new Agent({ keepAlive: true, maxSockets: 64, ca: server.caPem, cert: lab.certPem, key: lab.keyPem }) });
    }
    return async (worker: number): Promise<boolean> => {
      const { lab, gp, agent } = pairs[worker % PAIRS]!;
      const authorization = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
      const headers = { authorization, 'mex-To': gp.id, 'mex-WorkflowID': 'BENCH', 'content-length': String(payload.length) };
      return (await call(agent, server.origin, { method: 'POST', path: `/messageexchange/${lab.id}/outbox`, headers, body: payload })).status === 202;
    };
  };
  const compared = [
    { name: 'defaults', server: plain, send: await sender(plain) },
    { name: 'a replica confirming', server: confirming, send: await sender(confirming) },
  ];

  const rows: string[] = [];
  let errors = 0;
  for (const concurrency of CONCURRENCY) {
    for (const { send } of compared) await runLoad(concurrency, 1000, send);
    const runs = compared.map(() => [] as { perSecond: number; p50Ms: number; p99Ms: number; server: number; redis: number }[]);
    for (let round = 0; round < rounds; round++) {
      for (const [index, { server, send }] of compared.entries()) {
        const { result, seconds } = await measureCpu({ server: server.pid(), redis: local.pids.redis }, () => runLoad(concurrency, durationMs, send));
        errors += result.errors;
        const perSend = (cpu = 0) => (cpu * 1e6) / Math.max(1, result.operations);
        runs[index]!.push({ perSecond: result.perSecond, p50Ms: result.p50Ms, p99Ms: result.p99Ms, server: perSend(seconds.server), redis: perSend(seconds.redis) });
      }
    }
    const cells = runs.map((of) => {
      const at = (pick: (run: (typeof of)[number]) => number) => median(of.map(pick));
      return `${Math.round(at((run) => run.perSecond))} | ${at((run) => run.p50Ms).toFixed(1)} / ${at((run) => run.p99Ms).toFixed(1)} | ${Math.round(at((run) => run.server))} / ${Math.round(at((run) => run.redis))}`;
    });
    const ratio = median(runs[1]!.map((run, round) => run.perSecond / runs[0]![round]!.perSecond));
    rows.push(`| ${concurrency} | ${cells.join(' | ')} | ${Math.round(ratio * 100)}% |`);
    console.error(`concurrency ${concurrency} done`);
  }

  const lines = [
    '## Sends with a replica confirming (`scripts/bench/replica-confirmation.ts`)',
    '',
    `1 KiB sends from ${PAIRS} senders, ${values.seconds} s per measurement, ${rounds} rounds alternating between two meshbox processes on`,
    'the development Redis: one with its defaults, one with MESHBOX_REDIS_WAIT_REPLICAS=1 (each send answered once a',
    "replica of that Redis, on this machine too, has it: operations.md). Medians of the rounds; CPU time per send of",
    'the server and of Redis (the primary). A replica across a network adds its round trip to each answer.',
    '',
    `Machine: ${machineDescription()}.`,
    '',
    '| concurrency | defaults: sends/s | p50 / p99 ms | server / Redis µs CPU | a replica confirming: sends/s | p50 / p99 ms | server / Redis µs CPU | confirming vs defaults |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    `Errors: ${errors}.`,
  ];
  console.log(lines.join('\n'));
  if (!values['no-write']) await writeReportSection('replica-confirmation', lines.join('\n'));
} finally {
  for (const server of servers) await server.stop();
  await replica.stop();
}
