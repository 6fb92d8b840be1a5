import test, { type ExecutionContext } from 'ava';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { PassThrough } from 'node:stream';
import { discardBodyAfterAnswer } from '../src/http/unread-body.ts';

const MAX_BYTES = 64 * 1024;
const PAUSE_MS = 300;

interface Handling {
  /** Bytes the handler reads before it refuses (then lets go of the body). */
  readonly readFirst?: number;
  /** The handler pipes the body into a stream nobody reads, which holds it paused. */
  readonly pipeFirst?: boolean;
  readonly maxBytes?: number;
}

/** A plain HTTP server whose handler refuses every request at once (417), its body left to discardBodyAfterAnswer. */
async function refusingServer(t: ExecutionContext, { readFirst = 0, pipeFirst = false, maxBytes = MAX_BYTES }: Handling = {}): Promise<number> {
  const server = createServer(async (req, res) => {
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    if (readFirst > 0 && hasBody) await readSome(req, readFirst);
    if (pipeFirst && hasBody) {
      req.pipe(new PassThrough());
      while (req.readableFlowing !== false) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const kept = discardBodyAfterAnswer(req, res, maxBytes, PAUSE_MS);
    res.writeHead(417, kept ? {} : { Connection: 'close' }).end('refused');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

function readSome(req: IncomingMessage, bytes: number): Promise<void> {
  return new Promise((resolve) => {
    const onReadable = () => {
      if (req.read(bytes) !== null) {
        req.off('readable', onReadable);
        resolve();
      }
    };
    req.on('readable', onReadable);
  });
}

/**
 * Writes `parts` on one connection (a number: a pause of that many ms; 'answer': a wait for the
 * next answer; 'forever': parts of 16 KiB until the connection closes), then waits until
 * `answers` answers are in, or the server closed the connection. Resolves with what came back and
 * whether the server closed the connection.
 */
async function exchange(port: number, parts: readonly (string | Buffer | number | 'answer' | 'forever')[], answers = 1) {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let received = '';
  let closed = false;
  const answered = () => received.match(/HTTP\/1\.1 \d{3}/g) ?? [];
  socket.on('data', (part: Buffer) => (received += part.toString('latin1')));
  socket.on('error', () => {});
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve(void (closed = true))));
  const until = async (done: () => boolean) => {
    while (!done() && !closed) await new Promise((resolve) => setTimeout(resolve, 10));
  };
  let awaited = 0;
  for (const part of parts) {
    if (typeof part === 'number') await new Promise((resolve) => setTimeout(resolve, part));
    else if (part === 'answer') {
      awaited += 1;
      await until(() => answered().length >= awaited);
    }
    else if (part === 'forever') {
      while (!closed && !socket.destroyed) {
        if (!socket.write(Buffer.alloc(16 * 1024))) await Promise.race([once(socket, 'drain').catch(() => undefined), ended]);
      }
    } else if (!closed) socket.write(part);
  }
  await until(() => answered().length >= answers);
  // A close that follows the last answer, if one does.
  await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, 3 * PAUSE_MS))]);
  socket.destroy();
  return { answers: answered(), closesAnswer: /\r\nConnection: close\r\n/i.test(received), closed };
}

const post = (length: number | 'chunked') =>
  `POST / HTTP/1.1\r\nHost: x\r\n${length === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${length}`}\r\n\r\n`;
const get = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';

test('the rest of a body within the bound is read after the answer, however it comes: the connection carries the next request', async (t) => {
  const port = await refusingServer(t);
  t.like(await exchange(port, [post(MAX_BYTES), Buffer.alloc(MAX_BYTES), get], 2), { answers: ['HTTP/1.1 417', 'HTTP/1.1 417'], closed: false });
  const chunk = `3e8\r\n${'x'.repeat(1000)}\r\n`;
  t.like(await exchange(port, [post('chunked'), chunk, PAUSE_MS / 3, chunk, '0\r\n\r\n', get], 2), { answers: ['HTTP/1.1 417', 'HTTP/1.1 417'], closed: false });
});

test('the answer comes before the rest of the body, on a connection kept for the next request: a client that reads as it writes is told at once', async (t) => {
  const port = await refusingServer(t);
  t.like(await exchange(port, [post(1000), Buffer.alloc(500), 'answer', Buffer.alloc(500), get], 2), { answers: ['HTTP/1.1 417', 'HTTP/1.1 417'], closed: false });
});

test('a declared length over the bound is not read: the answer closes the connection', async (t) => {
  const port = await refusingServer(t);
  t.like(await exchange(port, [post(MAX_BYTES + 1), Buffer.alloc(10)]), { answers: ['HTTP/1.1 417'], closesAnswer: true, closed: true });
});

test('a streamed body that grows past the bound is read no further: its connection closes after the answer', async (t) => {
  const port = await refusingServer(t);
  t.like(await exchange(port, [post('chunked'), 'forever']), { answers: ['HTTP/1.1 417'], closesAnswer: false, closed: true });
});

test('a body that pauses longer than the pause limit is given up: its connection closes after the answer', async (t) => {
  const port = await refusingServer(t);
  t.like(await exchange(port, [post(2000), Buffer.alloc(1000), 'answer', 3 * PAUSE_MS]), { answers: ['HTTP/1.1 417'], closesAnswer: false, closed: true });
});

test('the rest of a body its handler read in part, then let go of, is read', async (t) => {
  const port = await refusingServer(t, { readFirst: 100, maxBytes: 64 * MAX_BYTES });
  // More than arrives at once: the handler stopped reading before the body was all in.
  t.like(await exchange(port, [post(16 * MAX_BYTES), Buffer.alloc(16 * MAX_BYTES), get], 2), { answers: ['HTTP/1.1 417', 'HTTP/1.1 417'], closed: false });
});

test('a body another reader holds (piped into a stream that reads no more) is left to it: the answer closes the connection', async (t) => {
  const port = await refusingServer(t, { pipeFirst: true, maxBytes: 64 * MAX_BYTES });
  t.like(await exchange(port, [post(16 * MAX_BYTES), Buffer.alloc(16 * MAX_BYTES)]), { answers: ['HTTP/1.1 417'], closesAnswer: true, closed: true });
});
