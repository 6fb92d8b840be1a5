import test from 'ava';
import { Metrics } from '../src/metrics.ts';
import { toMeshError } from '../src/http/middleware/errors.ts';

/** An error as Redis replies it (ioredis's ReplyError is untyped). */
function replyError(message: string): Error {
  return Object.assign(new Error(message), { name: 'ReplyError' });
}

test('a backing service out of reach is a 503 the client may retry; a fault of ours is a 500', (t) => {
  const status = (error: Error) => toMeshError(error).status;
  t.is(status(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' })), 503);
  // A Redis Cluster slot whose master is down: its peers still send clients there.
  t.is(status(replyError('MOVED 437 127.0.0.1:7001')), 503);
  t.is(status(replyError('CLUSTERDOWN The cluster is down')), 503);
  t.is(status(new Error('Too many Cluster redirections. Last error: Error: Connection is closed.')), 503);
  // Redis up but refusing writes for now: out of memory, a replica left read-only by a failover, loading its data.
  t.is(status(replyError("OOM command not allowed when used memory > 'maxmemory'.")), 503);
  t.is(status(replyError("READONLY You can't write against a read only replica.")), 503);
  t.is(status(replyError('LOADING Redis is loading the dataset in memory')), 503);
  t.is(status(new Error("Socket timeout. Expecting data, but didn't receive any in 10000ms.")), 503);
  t.is(status(replyError('MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to no.')), 503);
  t.is(status(replyError('ERR wrong number of arguments for command')), 500);
  t.is(status(new TypeError("Cannot read properties of undefined (reading 'id')")), 500);
});

test('metrics are still served when the lifecycle queue cannot be counted (Redis away): without that one gauge', async (t) => {
  const failing = new Metrics({ name: 'lifecycle', counts: () => Promise.reject(new Error('Connection is closed.')) });
  failing.requests.inc({ route: '/x', method: 'GET', status: '503' });
  const text = await failing.registry.metrics();
  t.regex(text, /meshbox_http_requests_total\{route="\/x",method="GET",status="503"\} 1/);
  t.notRegex(text, /meshbox_queue_jobs\{/);

  const hanging = new Metrics({ name: 'lifecycle', counts: () => new Promise(() => {}) });
  // The give-up timer does not hold a process open; a server's sockets do, this stands in for them.
  const serverStillRunning = setInterval(() => {}, 1000);
  try {
    t.notRegex(await hanging.registry.metrics(), /meshbox_queue_jobs\{/, 'a count that never answers is given up');
  } finally {
    clearInterval(serverStillRunning);
  }

  const working = new Metrics({ name: 'lifecycle', counts: async () => ({ scheduled: 3, due: 1, failing: 0, held: 2 }) });
  const counted = await working.registry.metrics();
  t.regex(counted, /meshbox_queue_jobs\{queue="lifecycle",state="scheduled"\} 3/);
  t.regex(counted, /meshbox_queue_jobs\{queue="lifecycle",state="held"\} 2/);
});

test('scrapes of /metrics at once share one count of the schedule (dozens of Redis commands), counted again a second on, and one that failed is not kept: any certificate may scrape as fast as it likes', async (t) => {
  let counted = 0;
  let failNext = false;
  const metrics = new Metrics({
    name: 'lifecycle',
    counts: async () => {
      counted += 1;
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (failNext) throw new Error('Connection is closed.');
      return { scheduled: counted, due: 0, failing: 0, held: 0 };
    },
  });
  const scrapes = await Promise.all(Array.from({ length: 50 }, () => metrics.registry.metrics()));
  t.is(counted, 1, 'fifty scrapes at once, one count');
  t.true(scrapes.every((text) => /state="scheduled"\} 1/.test(text)));
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  failNext = true;
  t.notRegex(await metrics.registry.metrics(), /meshbox_queue_jobs\{/, 'a second on, counted again (and failed)');
  t.is(counted, 2);
  failNext = false;
  t.regex(await metrics.registry.metrics(), /state="scheduled"\} 3/, 'a failed count is not kept');
});
