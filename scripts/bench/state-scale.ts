/**
 * `node scripts/bench/state-scale.ts [--max 1000000]`
 *
 * How state scales: inbox list latency (first page and a deep page, 500 per page) with 1k,
 * 100k and 1M messages waiting in one inbox, and Redis memory per message held — the latter
 * measured through the real send path (the record with its chunk sizes and inline payload, the
 * inbox entry, the lifecycle schedule entry, the audit entry); and a workflow search of a
 * workflow 28,000 mailboxes receive, read again after a directory change and kept, with the
 * slowest handshake answered while it is read. Writes docs/benchmarks.md.
 */
import { Agent } from 'node:https';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { ensureLocalServices } from '../services/index.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import { MailboxStore } from '../../server/src/store/mailboxes.ts';
import { type MessageMetadata, MessageStore } from '../../server/src/store/messages.ts';
import { PasswordCipher } from '../../server/src/store/password-cipher.ts';
import { buildAuthorizationHeader, newMessageId } from '../../shared/src/protocol/index.ts';
import { TEST_SECRET_KEY, type TestMailbox } from '../../test/support/harness.ts';
import { startServerProcess } from '../../test/support/server-process.ts';
import { mapInBatches } from '../../shared/src/batches.ts';
import { call, median, runLoad } from './load.ts';
import { machineDescription, writeReportSection } from './report.ts';

const { values } = parseArgs({ options: { max: { type: 'string', default: '1000000' }, 'no-write': { type: 'boolean', default: false } } });
const sizes = [1_000, 100_000, 1_000_000].filter((size) => size <= Number(values.max));
/** Mailboxes receiving the workflow the lookups are measured with: about as many as England's MESH has. */
const RECEIVERS = 28_000;

const local = await ensureLocalServices();
const server = await startServerProcess({ MESHBOX_RATE_LIMIT_PER_SECOND: '0', MESHBOX_LOG_LEVEL: 'error' });
const redis = new Redis(local.redisUrl, { enableAutoPipelining: true });
try {
  const keys = redisKeys(server.deployment.prefix);
  const messages = new MessageStore(redis, keys);
  const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
  const agentFor = (mailbox: TestMailbox) => new Agent({ keepAlive: true, ca: server.caPem, cert: mailbox.certPem, key: mailbox.keyPem });
  const [labAgent, gpAgent] = [agentFor(lab), agentFor(gp)];
  const auth = (mailbox: TestMailbox) => ({
    authorization: buildAuthorizationHeader({ mailboxId: mailbox.id, password: mailbox.password, sharedKey: server.sharedKey }),
    accept: 'application/vnd.mesh.v2+json',
  });

  // Memory per message, through the API: 5,000 real 1-byte sends (payloads inline, in Redis).
  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0);
  const sends = 5_000;
  const before = await usedMemory();
  let sent = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (sent < sends) {
        sent++;
        const response = await call(labAgent, server.origin, {
          method: 'POST',
          path: `/messageexchange/${lab.id}/outbox`,
          headers: { ...auth(lab), 'mex-To': gp.id, 'mex-WorkflowID': 'SCALE', 'content-length': '1' },
          body: 'x',
        });
        if (response.status !== 202) throw new Error(`send: ${response.status} ${response.body}`);
      }
    }),
  );
  const bytesPerMessage = ((await usedMemory()) - before) / sends;
  // The sends' tokens, remembered for about two hours (as long as they could be replayed), are
  // part of that growth: what stays for the message's life is the rest.
  const tokenPattern = keys.usedToken(lab.id, '*', '*');
  for (let cursor = '0'; ; ) {
    const [next, found] = await redis.scan(cursor, 'MATCH', tokenPattern, 'COUNT', 1000);
    if (found.length > 0) await redis.unlink(...found);
    cursor = next;
    if (cursor === '0') break;
  }
  const bytesPerMessageWithoutToken = ((await usedMemory()) - before) / sends;

  // Inbox depth: fill the inbox straight through the store (the same Lua scripts a send runs).
  const metadata: MessageMetadata = {
    type: 'DATA', sender: lab.id, recipient: gp.id, workflowId: 'SCALE', subject: '', localId: '', partnerId: '',
    fileName: '', checksum: '', contentType: '', compressed: false, encrypted: false, contentEncoding: '',
    totalChunks: 1, linkedMessageId: '',
  };
  let held = sends;
  const rows: string[] = [];
  for (const size of sizes) {
    const now = new Date();
    while (held < size) {
      const batch = Math.min(5_000, size - held);
      await Promise.all(
        Array.from({ length: batch }, async () => {
          const id = newMessageId(now);
          await messages.create(id, metadata, 1, now);
          await messages.deliver(id, gp.id);
        }),
      );
      held += batch;
    }
    const list = (path: string) => runLoad(1, 3_000, async () => (await call(gpAgent, server.origin, { method: 'GET', path, headers: auth(gp) })).status === 200);
    const first = await list(`/messageexchange/${gp.id}/inbox?max_results=500`);
    const deepCursor = Buffer.from(String(Math.floor(held * 0.9))).toString('base64url');
    const deep = await list(`/messageexchange/${gp.id}/inbox?max_results=500&continue_from=${deepCursor}`);
    rows.push(`| ${size.toLocaleString('en-GB')} | ${first.p50Ms.toFixed(1)} / ${first.p99Ms.toFixed(1)} | ${deep.p50Ms.toFixed(1)} / ${deep.p99Ms.toFixed(1)} |`);
    console.error(`inbox of ${size}: done`);
  }

  // Lookups: one workflow received by as many mailboxes as England's MESH has.
  const directory = new MailboxStore(redis, keys, new PasswordCipher(TEST_SECRET_KEY));
  await mapInBatches(Array.from({ length: RECEIVERS }, (_, n) => n), 1_000, (n) =>
    directory.create({ id: `SCALE${String(n).padStart(6, '0')}`, password: 'pw', name: `Practice ${n}`, workflows: ['SCALE_LOOKUP'] }),
  );
  const search = async () => {
    const response = await call(labAgent, server.origin, { method: 'GET', path: '/messageexchange/workflowsearch/SCALE_LOOKUP', headers: auth(lab) });
    return response.status === 200 && (JSON.parse(response.body) as { results: unknown[] }).results.length === RECEIVERS;
  };
  const afterChange: number[] = [];
  const handshakeWorst: number[] = [];
  for (let round = 0; round < 5; round++) {
    await directory.setActive('SCALE000000', true);
    let searching = true;
    const begun = performance.now();
    const searched = search().finally(() => (searching = false));
    let worst = 0;
    while (searching) {
      const asked = performance.now();
      await call(labAgent, server.origin, { method: 'GET', path: `/messageexchange/${lab.id}`, headers: auth(lab) });
      worst = Math.max(worst, performance.now() - asked);
    }
    if (!(await searched)) throw new Error('workflow search failed');
    afterChange.push(performance.now() - begun);
    handshakeWorst.push(worst);
  }
  const kept = await runLoad(1, 3_000, search);

  const lines = [
    '## State scale (`scripts/bench/state-scale.ts`)',
    '',
    'Inbox list (500 ids a page, v2) with the inbox holding N messages: the first page and a page',
    '90% of the way through (`continue_from`). The inbox is a sorted set, so a page costs',
    'O(log N + 500). Memory per message: Redis `used_memory` growth over 5,000 real sends of a',
    '1-byte message, all of it held (the record with its chunk sizes and inline payload, the inbox',
    "entry, the lifecycle schedule entry, the audit entry), and the send's used token, which Redis",
    'keeps for about two hours (as long as it could be replayed); then without the tokens.',
    '',
    `Machine: ${machineDescription()}.`,
    '',
    '| messages in the inbox | first page p50 / p99 ms | deep page p50 / p99 ms |',
    '|---|---|---|',
    ...rows,
    '',
    `Redis memory per message held: ${(bytesPerMessageWithoutToken / 1024).toFixed(2)} KiB (target: 1 KiB of metadata); ${(bytesPerMessage / 1024).toFixed(2)} KiB while its send's token is remembered.`,
    '',
    `Workflow search (\`/workflowsearch\`, no mailbox token) for a workflow ${RECEIVERS.toLocaleString('en-GB')} mailboxes receive`,
    '(an answer of ~1.7 MB): read from the directory after a change, the median of 5; handshakes asked',
    'one after another meanwhile, the median of their slowest; and the kept answer while nothing changes.',
    '',
    '| after a change: search ms | after a change: slowest handshake meanwhile ms | kept: search p50 / p99 ms |',
    '|---|---|---|',
    `| ${median(afterChange).toFixed(0)} | ${median(handshakeWorst).toFixed(0)} | ${kept.p50Ms.toFixed(1)} / ${kept.p99Ms.toFixed(1)} |`,
  ];
  console.log(lines.join('\n'));
  if (!values['no-write']) await writeReportSection('state-scale', lines.join('\n'));
} finally {
  redis.disconnect();
  await server.stop();
}
