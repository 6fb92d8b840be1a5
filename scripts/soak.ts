/**
 * `node scripts/soak.ts [--seconds 30] [--pairs 4] [--senders-per-pair 2]`
 *
 * Concurrent senders and receivers against a meshbox server process for a bounded time.
 * Checks that every message sent is delivered exactly once, byte-exact, and acknowledged,
 * and samples the server's memory; writes the figures to docs/reliability.md.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../shared/src/dev-paths.ts';
import { buildAuthorizationHeader } from '../shared/src/protocol/index.ts';
import type { TestMailbox } from '../test/support/harness.ts';
import { startServerProcess } from '../test/support/server-process.ts';
import { call } from './bench/load.ts';
import { machineDescription } from './bench/report.ts';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '30' },
    pairs: { type: 'string', default: '4' },
    'senders-per-pair': { type: 'string', default: '2' },
    'no-write': { type: 'boolean', default: false },
  },
});
const seconds = Number(values.seconds);
const pairCount = Number(values.pairs);
const sendersPerPair = Number(values['senders-per-pair']);
const sha = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

const server = await startServerProcess({ MESHBOX_RATE_LIMIT_PER_SECOND: '0', MESHBOX_LOG_LEVEL: 'error' });
const rssSamples: number[] = [];
const rss = async (): Promise<number> => {
  const status = await readFile(`/proc/${server.pid()}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
};

try {
  const agentFor = (mailbox: TestMailbox) => new Agent({ keepAlive: true, ca: server.caPem, cert: mailbox.certPem, key: mailbox.keyPem });
  const auth = (mailbox: TestMailbox) => ({
    authorization: buildAuthorizationHeader({ mailboxId: mailbox.id, password: mailbox.password, sharedKey: server.sharedKey }),
    accept: 'application/vnd.mesh.v2+json',
  });
  const expected = new Map<string, string>(); // message id -> sha256 of the body
  const delivered = new Map<string, number>(); // message id -> times downloaded and acknowledged
  const failures: string[] = [];
  let sending = true;

  const pairs = await Promise.all(
    Array.from({ length: pairCount }, async () => {
      const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
      return { lab, gp, labAgent: agentFor(lab), gpAgent: agentFor(gp) };
    }),
  );

  const sender = async ({ lab, gp, labAgent }: (typeof pairs)[number]): Promise<void> => {
    while (sending) {
      // Mostly small results, now and then a larger file that goes to object storage.
      const body = randomBytes(Math.random() < 0.1 ? 200_000 : 1 + Math.floor(Math.random() * 4_000));
      const response = await call(labAgent, server.origin, {
        method: 'POST',
        path: `/messageexchange/${lab.id}/outbox`,
        headers: { ...auth(lab), 'mex-To': gp.id, 'mex-WorkflowID': 'SOAK', 'content-length': String(body.length) },
        body,
      });
      if (response.status !== 202) failures.push(`send ${response.status} ${response.body}`);
      else expected.set((JSON.parse(response.body) as { message_id: string }).message_id, sha(body));
    }
  };

  const receiver = async ({ gp, gpAgent }: (typeof pairs)[number]): Promise<void> => {
    for (;;) {
      const listing = await call(gpAgent, server.origin, { method: 'GET', path: `/messageexchange/${gp.id}/inbox?max_results=100`, headers: auth(gp) });
      const ids = (JSON.parse(listing.body) as { messages: string[] }).messages;
      if (ids.length === 0) {
        if (!sending) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
        continue;
      }
      for (const messageId of ids) {
        const download = await new Promise<Buffer>((resolve, reject) => {
          import('node:https').then(({ request }) => {
            const req = request(new URL(`/messageexchange/${gp.id}/inbox/${messageId}`, server.origin), { agent: gpAgent, headers: auth(gp) }, (res) => {
              const parts: Buffer[] = [];
              res.on('data', (part: Buffer) => parts.push(part));
              res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(parts)) : reject(new Error(`download ${res.statusCode}`))));
            });
            req.on('error', reject);
            req.end();
          }, reject);
        });
        if (expected.has(messageId) && expected.get(messageId) !== sha(download)) failures.push(`corrupt ${messageId}`);
        const ack = await call(gpAgent, server.origin, {
          method: 'PUT',
          path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged`,
          headers: auth(gp),
        });
        if (ack.status !== 200) failures.push(`ack ${ack.status}`);
        delivered.set(messageId, (delivered.get(messageId) ?? 0) + 1);
      }
    }
  };

  const sampler = setInterval(() => void rss().then((bytes) => rssSamples.push(bytes)), 1_000);
  const started = Date.now();
  const loops = [
    ...pairs.flatMap((pair) => Array.from({ length: sendersPerPair }, () => sender(pair))),
    ...pairs.map((pair) => receiver(pair)),
  ];
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  sending = false;
  await Promise.all(loops);
  clearInterval(sampler);
  const elapsed = (Date.now() - started) / 1000;

  const lost = [...expected.keys()].filter((id) => !delivered.has(id));
  const duplicates = [...delivered.values()].filter((count) => count > 1).length;
  const unexpected = [...delivered.keys()].filter((id) => !expected.has(id));
  const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);
  const afterWarmup = rssSamples[Math.min(5, rssSamples.length - 1)] ?? 0;
  const last = rssSamples.at(-1) ?? 0;
  const ok = lost.length === 0 && duplicates === 0 && unexpected.length === 0 && failures.length === 0;
  const lines = [
    `## Soak (\`scripts/soak.ts\`)`,
    '',
    `${pairCount} sender/recipient pairs, ${sendersPerPair} senders each, ${seconds} s of sending then draining;`,
    'bodies 1 B–4 KB (in Redis) and 10% 200 KB (in object storage). Server, Redis, S3 server and',
    'clients on one machine.',
    '',
    `Machine: ${machineDescription()}.`,
    '',
    '| measure | value |',
    '|---|---|',
    `| messages sent (202) | ${expected.size} |`,
    `| delivered exactly once, byte-exact, acknowledged | ${delivered.size - duplicates} |`,
    `| lost / duplicated / unexpected | ${lost.length} / ${duplicates} / ${unexpected.length} |`,
    `| other failures | ${failures.length} |`,
    `| throughput (send + download + ack) | ${(expected.size / elapsed).toFixed(0)} messages/s |`,
    `| server RSS after warm-up / at the end / peak | ${mib(afterWarmup)} / ${mib(last)} / ${mib(Math.max(...rssSamples))} MiB |`,
    `| verdict | ${ok ? 'every message delivered exactly once' : 'FAILED'} |`,
  ];
  console.log(lines.join('\n'));
  console.error(`rss samples (MiB): ${rssSamples.map((bytes) => mib(bytes)).join(" ")}`);
  if (failures.length > 0) console.error(failures.slice(0, 10).join('\n'));
  if (!values['no-write']) {
    const file = resolve(REPO_ROOT, 'docs/reliability.md');
    const current = await readFile(file, 'utf8');
    const start = '<!-- soak -->';
    const end = '<!-- /soak -->';
    const section = `${start}\n${lines.join('\n')}\n${end}`;
    await writeFile(file, current.includes(start) ? current.replace(new RegExp(`${start}[\\s\\S]*?${end}`), section) : `${current.trimEnd()}\n\n${section}\n`);
  }
  process.exitCode = ok ? 0 : 1;
} finally {
  await server.stop();
}
