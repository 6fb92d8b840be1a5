/**
 * `node scripts/bench/transfer.ts [--size-mib 2048] [--chunk-mib 100] [--rounds 3]`
 *
 * Upload and download MB/s of one large message through meshbox (mutual TLS, chunked, a
 * separate server process) against the baseline measured in the same run: the same bytes
 * put and got with @aws-sdk/client-s3 directly to the same S3 server, in the same chunks.
 * The two alternate for several rounds and the medians are compared: on a small shared
 * machine one run of either can be a fifth off. Writes the figures to docs/benchmarks.md.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, DeleteBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { ensureLocalServices } from '../services/index.ts';
import { createS3Client } from '../../server/src/connections.ts';
import { PayloadStore } from '../../server/src/store/payloads.ts';
import { readText, streamingRequest } from '../../test/support/http.ts';
import { MiB, PayloadGenerator } from '../../test/support/payload.ts';
import { startServerProcess } from '../../test/support/server-process.ts';
import { machineDescription, writeReportSection } from './report.ts';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '2048' },
    'chunk-mib': { type: 'string', default: '100' },
    rounds: { type: 'string', default: '3' },
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

async function timed(action: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await action();
  return (performance.now() - started) / 1000;
}

const rate = (seconds: number): number => totalBytes / 1e6 / seconds;

async function directS3(): Promise<{ up: number; down: number }> {
  const local = await ensureLocalServices();
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
    const up = await timed(async () => {
      for (let n = 1; n <= chunkCount; n++) {
        const body = payload.stream((n - 1) * chunkBytes, chunkLength(n));
        await s3.send(new PutObjectCommand({ Bucket, Key: `direct/${n}`, Body: body, ContentLength: chunkLength(n) }));
      }
    });
    const down = await timed(async () => {
      for (let n = 1; n <= chunkCount; n++) {
        const object = await s3.send(new GetObjectCommand({ Bucket, Key: `direct/${n}` }));
        await drain(object.Body as Readable);
      }
    });
    return { up: rate(up), down: rate(down) };
  } finally {
    await new PayloadStore(s3, Bucket).deletePrefix('direct/');
    await s3.send(new DeleteBucketCommand({ Bucket }));
    s3.destroy();
  }
}

async function throughMeshbox(): Promise<{ up: number; down: number }> {
  const server = await startServerProcess({ MESHBOX_LOG_LEVEL: 'error' });
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    let messageId = '';
    const up = await timed(async () => {
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
    const down = await timed(async () => {
      for (let n = 1; n <= chunkCount; n++) {
        const path = n === 1 ? `/messageexchange/${gp.id}/inbox/${messageId}` : `/messageexchange/${gp.id}/inbox/${messageId}/${n}`;
        const response = await streamingRequest(server, gp, { method: 'GET', path });
        const bytes = await drain(response);
        if (bytes !== chunkLength(n)) throw new Error(`chunk ${n}: ${bytes} bytes`);
      }
    });
    await server.deleteMessagePayload(messageId);
    return { up: rate(up), down: rate(down) };
  } finally {
    await server.stop();
  }
}

interface Rates {
  readonly up: number;
  readonly down: number;
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
const summary = (runs: Rates[], direction: keyof Rates): string => {
  const rates = runs.map((run) => run[direction]);
  return `${median(rates).toFixed(0)} (${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)})`;
};
const percent = (direction: keyof Rates): string =>
  `${((median(meshboxRuns.map((run) => run[direction])) / median(directRuns.map((run) => run[direction]))) * 100).toFixed(0)}%`;
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
];
console.log(lines.join('\n'));
await writeReportSection('transfer', lines.join('\n'));
