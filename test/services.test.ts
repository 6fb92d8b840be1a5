import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import test from 'ava';
import { Redis } from 'ioredis';
import { ensureLocalServices, type LocalServices, localServicesStatus, stopLocalServices } from '../scripts/services/index.ts';
import { listensOn, portOpen } from '../scripts/services/processes.ts';
import { removeDeploymentState } from './support/cleanup.ts';
import { startTestServer } from './support/harness.ts';
import { sendMessage } from './support/http.ts';

const REPO_ROOT = resolve(import.meta.dirname, '..');
const run = promisify(execFile);

function s3Client(services: LocalServices): S3Client {
  return new S3Client({
    endpoint: services.s3.endpoint,
    region: services.s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: services.s3.accessKeyId, secretAccessKey: services.s3.secretAccessKey },
  });
}

async function withRedis<T>(url: string, use: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    return await use(redis);
  } finally {
    redis.disconnect();
  }
}

// The shared services are left running: other test files use them.

test('concurrent calls get the same running services', async (t) => {
  const [first, second] = await Promise.all([ensureLocalServices(), ensureLocalServices()]);
  t.deepEqual(first, second);
  t.regex(first.redisUrl, /^redis:\/\/127\.0\.0\.1:\d+$/);
  t.regex(first.s3.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.deepEqual(await localServicesStatus(), { redis: first.redisUrl, s3: first.s3.endpoint });
});

test('Redis stores values and has its append-only file on', async (t) => {
  const { redisUrl } = await ensureLocalServices();
  await withRedis(redisUrl, async (redis) => {
    const key = `test:services:${randomBytes(8).toString('hex')}`;
    await redis.set(key, 'value', 'EX', 60);
    t.is(await redis.get(key), 'value');
    t.deepEqual(await redis.config('GET', 'appendonly'), ['appendonly', 'yes']);
  });
});

test('S3 stores objects byte-exact and pages ListObjectsV2', async (t) => {
  const s3 = s3Client(await ensureLocalServices());
  const Bucket = `test-services-${randomBytes(6).toString('hex')}`;
  await s3.send(new CreateBucketCommand({ Bucket }));
  const body = randomBytes(100_000);
  await s3.send(new PutObjectCommand({ Bucket, Key: 'a/1', Body: body }));
  const got = await s3.send(new GetObjectCommand({ Bucket, Key: 'a/1' }));
  t.true(Buffer.from(await got.Body!.transformToByteArray()).equals(body));

  await s3.send(new PutObjectCommand({ Bucket, Key: 'a/2', Body: 'two' }));
  await s3.send(new PutObjectCommand({ Bucket, Key: 'a/3', Body: 'three' }));
  // Paging makes s3rver build a DES continuation token: this fails unless its process has
  // the OpenSSL legacy provider (docs/infra.md).
  const keys: string[] = [];
  let ContinuationToken: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: 'a/', MaxKeys: 1, ContinuationToken }));
    t.true((page.Contents?.length ?? 0) <= 1);
    keys.push(...(page.Contents ?? []).map((object) => object.Key ?? ''));
    ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (ContinuationToken);
  t.deepEqual(keys, ['a/1', 'a/2', 'a/3']);
  s3.destroy();
});

test('separate processes starting at once share one pair; a killed Redis is restarted with its data', async (t) => {
  // A private data directory, so stopping and killing here cannot disturb other test files.
  const dataDir = join(REPO_ROOT, 'var', `test-services-${randomBytes(6).toString('hex')}`);
  t.teardown(async () => {
    await stopLocalServices({ dataDir });
    await rm(dataDir, { recursive: true, force: true });
  });
  const cli = (command: string): Promise<string> =>
    run(process.execPath, [join(REPO_ROOT, 'scripts/services.ts'), command, '--data-dir', dataDir]).then((out) => out.stdout);

  const outputs = await Promise.all([cli('start'), cli('start'), cli('start'), cli('start')]);
  t.is(new Set(outputs).size, 1, outputs.join('\n'));
  const services = await ensureLocalServices({ dataDir });
  t.is(outputs[0], `redis ${services.redisUrl}\ns3 ${services.s3.endpoint}\n`);

  await withRedis(services.redisUrl, async (redis) => {
    await redis.set('survives', 'yes');
    await new Promise((done) => setTimeout(done, 1_100)); // appendfsync everysec
    const pid = Number((await redis.info('server')).match(/^process_id:(\d+)/m)?.[1]);
    process.kill(pid, 'SIGKILL');
  });
  t.is(await cli('status'), `redis stopped\ns3 running ${services.s3.endpoint}\n`);

  const restarted = await ensureLocalServices({ dataDir });
  t.is(restarted.s3.endpoint, services.s3.endpoint);
  t.is(await withRedis(restarted.redisUrl, (redis) => redis.get('survives')), 'yes');

  await stopLocalServices({ dataDir });
  t.is(await cli('status'), 'redis stopped\ns3 stopped\n');

  // reset: what was stored is gone, and the next start begins empty.
  await cli('reset');
  t.false(existsSync(dataDir));
  const fresh = await ensureLocalServices({ dataDir });
  t.is(await withRedis(fresh.redisUrl, (redis) => redis.get('survives')), null);
});

test('a test server deletes its keys and bucket when it closes, unless asked to keep them', async (t) => {
  const local = await ensureLocalServices();
  const s3 = s3Client(local);
  const stateOf = async (server: { redisPrefix: string; bucket: string }) => ({
    keys: await withRedis(local.redisUrl, (redis) => redis.keys(`${server.redisPrefix}*`)),
    objects: await s3
      .send(new ListObjectsV2Command({ Bucket: server.bucket }))
      .then((page) => page.KeyCount ?? 0, () => -1),
  });
  for (const keepState of [true, false]) {
    // Payloads in object storage too (small ones would stay in Redis).
    const server = await startTestServer({ limits: { inlinePayloadBytes: 0 } });
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    await sendMessage(server, lab, gp, 'to be cleaned up');
    await server.close({ keepState });
    const left = await stateOf(server);
    if (keepState) {
      t.true(left.keys.length > 0 && left.objects === 1, JSON.stringify(left));
      await withRedis(local.redisUrl, (redis) => removeDeploymentState(redis, server.redisPrefix, s3, server.bucket));
    } else {
      t.deepEqual(left, { keys: [], objects: -1 }, 'no key and no bucket left');
    }
  }
  s3.destroy();
});

test('a port is told to be listened on by the process that holds it, not by another: a test process started on a port another took first is not mistaken for it', async (t) => {
  const holder = spawn(process.execPath, ['-e', "require('node:net').createServer().listen(0, '127.0.0.1', function () { console.log(this.address().port) })"], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [line] = (await once(holder.stdout, 'data')) as [Buffer];
    const port = Number(line.toString().trim());
    const ours = createServer().listen(0, '127.0.0.1');
    await once(ours, 'listening');
    const ownPort = (ours.address() as AddressInfo).port;
    t.true(listensOn(holder.pid ?? 0, port), 'the holder');
    t.false(listensOn(process.pid, port), 'not this process, though the port answers');
    t.true(await portOpen(port));
    t.true(listensOn(process.pid, ownPort));
    t.false(listensOn(holder.pid ?? 0, ownPort));
    ours.close();
    await once(ours, 'close');
    t.false(listensOn(process.pid, ownPort), 'once closed');
  } finally {
    holder.kill();
  }
});
