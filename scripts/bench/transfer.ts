/**
 * `node scripts/bench/transfer.ts [--size-mib 2048] [--chunk-mib 100] [--rounds 3] [--no-write]`
 *
 * Upload and download MB/s of one large message through meshbox (mutual TLS, chunked, a
 * separate server process) against the baseline measured in the same run: the same bytes
 * put and got with @aws-sdk/client-s3 directly to the same S3 server, in the same chunks.
 * The two alternate for several rounds and the medians are compared: on a small shared
 * machine one run of either can be a fifth off. The CPU time each process spends per GiB is
 * measured too (Linux /proc): it shows what the two cores allow. Writes docs/benchmarks.md.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { ensureLocalServices } from '../services/index.ts';
import { createS3Client } from '../../server/src/connections.ts';
import { removeBucket } from '../../test/support/cleanup.ts';
import { readText, streamingRequest } from '../../test/support/http.ts';
import { MiB, PayloadGenerator } from '../../test/support/payload.ts';
import { startServerProcess } from '../../test/support/server-process.ts';
import { measureCpu } from './cpu-time.ts';
import { machineDescription, writeReportSection } from './report.ts';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '2048' },
    'chunk-mib': { type: 'string', default: '100' },
    rounds: { type: 'string', default: '3' },
    'no-write': { type: 'boolean', default: false },
  },
});
const totalBytes = Number(values['size-mib']) * MiB;
const chunkBytes = Number(values['chunk-mib']) * MiB;
const chunkCount = Math.ceil(totalBytes / chunkBytes);
const chunkLength = (n: number): number => Math.min(chunkBytes, totalBytes - (n - 1) * chunkBytes);
const payload = new PayloadGenerator();

async function drain(stream: Readable): Promise<number> {
  let bytes = 0;
  for await (const part of stream) bytes += (part as Buffer).length;
  return bytes;
}

/** One direction of one round: MB/s, and CPU seconds per GiB of each process measured. */
interface Transfer {
  readonly rate: number;
  readonly cpuPerGiB: Record<string, number>;
}

async function timed(pids: Record<string, number>, action: () => Promise<unknown>): Promise<Transfer> {
  const started = performance.now();
  const { seconds } = await measureCpu(pids, action);
  const gib = totalBytes / 1024 ** 3;
  return {
    rate: totalBytes / 1e6 / ((performance.now() - started) / 1000),
    cpuPerGiB: Object.fromEntries(Object.entries(seconds).map(([name, cpu]) => [name, cpu / gib])),
  };
}

async function directS3(): Promise<Rates> {
  const local = await ensureLocalServices();
  const pids = { s3: local.pids.s3, client: process.pid };
  const s3 = createS3Client({
    endpoint: local.s3.endpoint,
    bucket: 'unused',
    region: local.s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: local.s3.accessKeyId, secretAccessKey: local.s3.secretAccessKey },
  });
  const Bucket = `bench-${randomBytes(6).toString('hex')}`;
  await s3.send(new CreateBucketCommand({ Bucket }));
  try {
    const up = await timed(pids, async () => {
      for (let n = 1; n <= chunkCount; n++) {
        const body = payload.stream((n - 1) * chunkBytes, chunkLength(n));
        await s3.send(new PutObjectCommand({ Bucket, Key: `direct/${n}`, Body: body, ContentLength: chunkLength(n) }));
      }
    });
    const down = await timed(pids, async () => {
      for (let n = 1; n <= chunkCount; n++) {
        const object = await s3.send(new GetObjectCommand({ Bucket, Key: `direct/${n}` }));
        await drain(object.Body as Readable);
      }
    });
    return { up, down };
  } finally {
    await removeBucket(s3, Bucket);
    s3.destroy();
  }
}

async function throughMeshbox(): Promise<Rates> {
  const server = await startServerProcess({ MESHBOX_LOG_LEVEL: 'error' });
  const pids = { s3: (await ensureLocalServices()).pids.s3, meshbox: server.pid(), client: process.pid };
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    let messageId = '';
    const up = await timed(pids, async () => {
      for (let n = 1; n <= chunkCount; n++) {
        const response = await streamingRequest(server, lab, {
          method: 'POST',
          path: n === 1 ? `/messageexchange/${lab.id}/outbox` : `/messageexchange/${lab.id}/outbox/${messageId}/${n}`,
          headers: {
            'mex-To': gp.id,
            'mex-WorkflowID': 'BENCH',
            'mex-Chunk-Range': `${n}:${chunkCount}`,
            'content-length': String(chunkLength(n)),
          },
          body: payload.stream((n - 1) * chunkBytes, chunkLength(n)),
        });
        const text = await readText(response);
        if (response.statusCode !== 202) throw new Error(`chunk ${n}: ${response.statusCode} ${text}`);
        if (n === 1) messageId = (JSON.parse(text) as { message_id: string }).message_id;
      }
    });
    const down = await timed(pids, async () => {
      for (let n = 1; n <= chunkCount; n++) {
        const path = n === 1 ? `/messageexchange/${gp.id}/inbox/${messageId}` : `/messageexchange/${gp.id}/inbox/${messageId}/${n}`;
        const response = await streamingRequest(server, gp, { method: 'GET', path });
        const bytes = await drain(response);
        if (bytes !== chunkLength(n)) throw new Error(`chunk ${n}: ${bytes} bytes`);
      }
    });
    await server.deleteMessagePayload(messageId);
    return { up, down };
  } finally {
    await server.stop();
  }
}

interface Rates {
  readonly up: Transfer;
  readonly down: Transfer;
}
const rounds = Number(values.rounds);
const directRuns: Rates[] = [];
const meshboxRuns: Rates[] = [];
for (let round = 1; round <= rounds; round++) {
  directRuns.push(await directS3());
  meshboxRuns.push(await throughMeshbox());
  console.error(`round ${round}: direct ${JSON.stringify(directRuns.at(-1))}, meshbox ${JSON.stringify(meshboxRuns.at(-1))}`);
}
const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const ratesOf = (runs: Rates[], direction: keyof Rates): number[] => runs.map((run) => run[direction].rate);
const summary = (runs: Rates[], direction: keyof Rates): string => {
  const rates = ratesOf(runs, direction);
  return `${median(rates).toFixed(0)} (${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)})`;
};
const percent = (direction: keyof Rates): string =>
  `${((median(ratesOf(meshboxRuns, direction)) / median(ratesOf(directRuns, direction))) * 100).toFixed(0)}%`;
/** Median CPU seconds per GiB of each named process, as `a / b / c`. */
const cpu = (runs: Rates[], direction: keyof Rates, ...names: string[]): string =>
  names.map((name) => median(runs.map((run) => run[direction].cpuPerGiB[name] ?? 0)).toFixed(1)).join(' / ');
const lines = [
  '## Large transfers (`scripts/bench/transfer.ts`)',
  '',
  `${(totalBytes / MiB).toFixed(0)} MiB message in ${chunkCount} chunks of ${(chunkBytes / MiB).toFixed(0)} MiB, sequential,`,
  'client, meshbox and the S3 server (s3rver) all on this machine. Baseline: the same chunks',
  'put and got with @aws-sdk/client-s3 straight to the same S3 server, in the same run.',
  `${rounds} rounds, direct and meshbox alternating; median MB/s (range), and the ratio of the medians.`,
  '',
  `Machine: ${machineDescription()}.`,
  '',
  '| direction | direct S3 (MB/s) | through meshbox (MB/s) | meshbox / direct |',
  '|---|---|---|---|',
  `| upload | ${summary(directRuns, 'up')} | ${summary(meshboxRuns, 'up')} | ${percent('up')} |`,
  `| download | ${summary(directRuns, 'down')} | ${summary(meshboxRuns, 'down')} | ${percent('down')} |`,
  '',
  'CPU seconds per GiB moved (medians): what the two cores allow.',
  '',
  '| direction | direct: S3 server / client | through meshbox: S3 server / meshbox / client |',
  '|---|---|---|',
  ...(['up', 'down'] as const).map(
    (direction) =>
      `| ${direction === 'up' ? 'upload' : 'download'} | ${cpu(directRuns, direction, 's3', 'client')} | ${cpu(meshboxRuns, direction, 's3', 'meshbox', 'client')} |`,
  ),
];
console.log(lines.join('\n'));
if (!values['no-write']) await writeReportSection('transfer', lines.join('\n'));
