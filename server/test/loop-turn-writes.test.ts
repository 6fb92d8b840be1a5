import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import test from 'ava';
import { Redis } from 'ioredis';
import { ensureLocalServices } from '../../scripts/services/index.ts';
import { batchWritesPerLoopTurn } from '../src/store/loop-turn-writes.ts';
import { openRedis } from '../src/store/redis-client.ts';

const turnEnd = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('writes made in one turn of the event loop are held until its end, then go out together and in order', async (t) => {
  const received: Buffer[] = [];
  const server = createServer((peer) => peer.on('data', (data: Buffer) => received.push(data)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const socket: Socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  t.teardown(() => {
    socket.destroy();
    server.close();
  });
  batchWritesPerLoopTurn(socket);
  batchWritesPerLoopTurn(socket);

  for (const round of [1, 2]) {
    for (const part of ['one ', 'two ', 'three ']) socket.write(`${round}:${part}`);
    // On loopback an unbatched write reaches the kernel at once and leaves nothing buffered.
    t.is(socket.writableLength, 3 * 'n:'.length + 'one two three '.length, `round ${round}: all three held`);
    await turnEnd();
    t.is(socket.writableLength, 0, `round ${round}: written at the turn's end`);
  }
  const expected = '1:one 1:two 1:three 2:one 2:two 2:three ';
  for (let wait = 0; wait < 100 && Buffer.concat(received).length < expected.length; wait++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.is(Buffer.concat(received).toString(), expected);
});

test("a Redis connection holds the turn's commands until its end, and so does the connection made after a reconnection", async (t) => {
  const local = await ensureLocalServices();
  const redis = openRedis({ redisUrl: local.redisUrl, redisCluster: false });
  if (!(redis instanceof Redis)) throw new Error('not a standalone Redis client');
  t.teardown(() => redis.disconnect());
  for (const attempt of ['first connection', 'after reconnecting']) {
    await redis.ping();
    const answers = Promise.all(Array.from({ length: 20 }, (_, i) => redis.echo(`${attempt} ${i}`)));
    t.true(redis.stream.writableLength > 0, `${attempt}: commands held`);
    t.deepEqual(await answers, Array.from({ length: 20 }, (_, i) => `${attempt} ${i}`));
    const gone = once(redis, 'close');
    redis.disconnect(true);
    await gone;
  }
});
