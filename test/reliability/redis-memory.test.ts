import test from 'ava';
import { waitFor } from '../../scripts/services/processes.ts';
import { capturedLogger } from '../../server/test/support/captured-log.ts';
import { startTestServer } from '../support/harness.ts';
import { mailboxRequest, sendMessage } from '../support/http.ts';
import { startTestRedis } from '../support/redis-server.ts';

const MiB = 1024 * 1024;

test('small payloads go to object storage while Redis is past three quarters of its maxmemory, and into Redis again once it is not: nothing is refused, every message downloads whole', async (t) => {
  const redis = await startTestRedis(['--maxmemory', '64mb']);
  t.teardown(() => redis.stop());
  const { logger, lines } = capturedLogger();
  const server = await startTestServer({ redisUrl: redis.url, worker: false, logger });
  t.teardown(() => server.close());
  const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
  const keptInRedis = async (messageId: string) => (await server.services.messages.chunkSource(messageId, 1)).inlinePayload !== undefined;
  const downloaded = async (messageId: string) => (await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` })).body.toString();

  const before = await sendMessage(server, lab, gp, 'while Redis has room');
  t.true(await keptInRedis(before), 'a small payload is kept with its record');

  // Another tenant of the same Redis (or a flood of messages) takes it past three quarters: to 80%.
  const filler: string[] = [];
  const used = async () => Number(/^used_memory:(\d+)/m.exec(await redis.admin.info('memory'))?.[1]);
  while ((await used()) < 0.8 * 64 * MiB) {
    filler.push(`filler:${filler.length}`);
    await redis.admin.set(filler.at(-1)!, Buffer.alloc(MiB / 4, 1));
  }
  t.true(await waitFor(async () => !server.services.redisRoomForPayloads(), 20_000, 100), 'the server has seen Redis nearly full');
  t.true(lines.some((line) => line.level === 40 && /small payloads go to object storage/.test(line.msg)), 'and said so, once');

  const during = await sendMessage(server, lab, gp, 'while Redis is nearly full');
  t.false(await keptInRedis(during), 'its payload went to object storage');
  t.is(await downloaded(during), 'while Redis is nearly full');

  await redis.admin.del(...filler);
  t.true(await waitFor(async () => server.services.redisRoomForPayloads(), 20_000, 100), 'the server has seen the room come back');
  const after = await sendMessage(server, lab, gp, 'once Redis has room again');
  t.true(await keptInRedis(after));
  for (const [messageId, text] of [[before, 'while Redis has room'], [after, 'once Redis has room again']] as const) t.is(await downloaded(messageId), text);
  t.is(lines.filter((line) => /small payloads go to object storage/.test(line.msg)).length, 1);
});
