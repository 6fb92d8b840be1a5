import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import Koa from 'koa';
import { Redis } from 'ioredis';
import { ensureLocalServices } from '../../scripts/services/index.ts';
import { errorResponder } from '../src/http/middleware/errors.ts';
import type { RequestState } from '../src/http/middleware/request-context.ts';
import { workerErrorReporter } from '../src/jobs/lifecycle-worker.ts';
import { capturedLogger } from './support/captured-log.ts';

test("an error's long text (a refusal's detail naming a client's 30 KB header) is logged cut, in its message, its stack and its detail, and the stack's frames kept: a client could otherwise write three times its headers into the log with every request", (t) => {
  const header = 'x'.repeat(30_000);
  const { logger, lines } = capturedLogger();
  const refusal = Object.assign(new Error(`Unsupported transfer coding: ${header}`), { detail: header });
  logger.info({ err: refusal }, 'request refused for what it sent');
  logger.error({ err: new AggregateError([refusal], 'several failed') }, 'request failed');
  t.is(lines.length, 2);
  for (const line of lines) t.true(JSON.stringify(line).length < 12_000, `${JSON.stringify(line).length} characters`);
  const err = lines[0]!.err as { message: string; stack: string; detail: string };
  t.regex(err.message, /^Unsupported transfer coding: x{995}… \(30029 characters\)$/);
  t.regex(err.detail, /^x{1024}… \(30000 characters\)$/);
  t.regex(err.stack, /^Error: Unsupported transfer coding: x+… \(30029 characters\)\n {4}at /);
  t.is(refusal.detail, header, 'the error itself is left as it was');
  // `$'` in a client's text is text: as a replacement pattern it would copy the stack's frames in, 500 times.
  logger.info({ err: new Error(`Unsupported transfer coding: ${"$'".repeat(1000)}`) }, 'request refused for what it sent');
  const patterned = lines[2]!.err as { message: string; stack: string };
  t.true(patterned.stack.startsWith(`Error: ${patterned.message}\n    at `), patterned.stack.slice(0, 300));
});

test('an error from a Redis command is logged with the command name, never its arguments (a message record, its payload)', async (t) => {
  const redis = new Redis((await ensureLocalServices()).redisUrl, { maxRetriesPerRequest: 1 });
  try {
    const key = `test:logging:${randomUUID()}`;
    await redis.set(key, 'text');
    // Refused by Redis, as a write is when it is out of memory: ioredis attaches the command to the error.
    const refused = await redis.hset(key, 'subject', 'Result for Jane Doe', 'payload', Buffer.from('MSH|^~\\&|LAB')).catch((error: unknown) => error as Error);
    t.true(refused instanceof Error);
    t.true(JSON.stringify((refused as Error & { command?: unknown }).command).includes('Jane Doe'), 'ioredis carries the arguments');

    const { logger, lines } = capturedLogger();
    logger.error({ err: refused }, 'request failed');
    logger.error({ err: Object.assign(new Error('send failed'), { storeError: refused }) }, 'request failed');
    logger.error({ err: new AggregateError([refused], 'several failed') }, 'request failed');
    t.is(lines.length, 3);
    for (const line of lines.map((parsed) => JSON.stringify(parsed))) {
      t.false(line.includes('Jane Doe'), line);
      t.false(line.includes('MSH'), line);
      t.regex(line, /"command":\{"name":"hset"\}/);
      t.regex(line, /WRONGTYPE/);
    }
    t.truthy((refused as Error & { command?: { args?: unknown } }).command?.args, "the error itself is left as it was");
    await redis.del(key);
  } finally {
    redis.disconnect();
  }
});

test('a lifecycle worker error repeated in a tight loop (Redis refusing every write) is logged once per reason per interval, then how many more came', async (t) => {
  const { logger, lines } = capturedLogger();
  const intervalMs = 300;
  const report = workerErrorReporter(logger, intervalMs);
  const outOfMemory = Object.assign(new Error("OOM command not allowed when used memory > 'maxmemory'."), { name: 'ReplyError' });
  for (let i = 0; i < 5000; i++) report(outOfMemory);
  report(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' }));
  t.deepEqual(lines.map((line) => line.msg), ['lifecycle worker error', 'lifecycle worker error']);
  await new Promise((done) => setTimeout(done, intervalMs * 2));
  t.is(lines.length, 3);
  t.like(lines[2], { reason: "OOM command not allowed when used memory > 'maxmemory'.", repeats: 4999, msg: 'lifecycle worker error 4999 more times for this reason' });
});

/** What ioredis's Cluster client fails with while a master restarts: the slot and the node in the message. */
function clusterRedirections(slot: number, lastError: string): Error {
  return Object.assign(new Error(`Too many Cluster redirections. Last error: ${lastError}`), { name: 'Error' });
}

test("a Redis Cluster's failures during a master's restart are logged a line per cause, not per slot or node: by the worker, and for the requests answered 503", async (t) => {
  const intervalMs = 300;
  const duringRestart = [
    ...Array.from({ length: 200 }, (_, n) => clusterRedirections(n * 80, `ReplyError: MOVED ${n * 80} 127.0.0.1:${33_000 + (n % 3)}`)),
    ...Array.from({ length: 200 }, (_, n) => clusterRedirections(n * 80, 'Error: Connection is closed.')),
  ];
  const worker = capturedLogger();
  const report = workerErrorReporter(worker.logger, intervalMs);
  for (const error of duringRestart) report(error);
  t.deepEqual(worker.lines.map((line) => line.msg), ['lifecycle worker error', 'lifecycle worker error'], 'two causes, two lines');

  const api = capturedLogger();
  const app = new Koa<RequestState>();
  app.use(async (ctx, next) => {
    ctx.state.log = api.logger;
    await next();
  });
  // Long enough for 400 requests even on a loaded host: all within one interval, a line per cause.
  const requestsIntervalMs = 3_000;
  app.use(errorResponder(api.logger, { unreadBodyBytes: 0, logIntervalMs: requestsIntervalMs }));
  let failing = 0;
  app.use(() => {
    throw duringRestart[failing++ % duringRestart.length];
  });
  const server = createServer(app.callback()).listen(0, '127.0.0.1');
  t.teardown(() => server.close());
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const statuses = [];
  for (let n = 0; n < 400; n++) statuses.push((await fetch(`http://127.0.0.1:${port}/`)).status);
  t.true(statuses.every((status) => status === 503));
  t.is(api.lines.filter((line) => line.msg === 'request failed: a backend is unavailable').length, 2, 'a line per cause');
  await new Promise((done) => setTimeout(done, requestsIntervalMs * 2));
  t.deepEqual(api.lines.filter((line) => line.repeats !== undefined).map((line) => line.repeats), [199, 199], 'then how many more came of each');
});
