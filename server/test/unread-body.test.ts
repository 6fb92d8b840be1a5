import test from 'ava';
import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { discardUnreadBody } from '../src/http/unread-body.ts';

const MAX_BYTES = 64 * 1024;
const PAUSE_MS = 300;

/** A server whose handler refuses without reading (or after reading `readFirst` bytes, or piping it into a stream that is not read) and answers whether the rest was read. */
async function refusingServer(
  t: { teardown: (fn: () => void) => void },
  { readFirst = 0, pipeFirst = false, maxBytes = MAX_BYTES }: { readonly readFirst?: number; readonly pipeFirst?: boolean; readonly maxBytes?: number } = {},
): Promise<Server> {
  const server = createServer(async (req, res) => {
    if (readFirst > 0) await readSome(req, readFirst);
    if (pipeFirst) {
      req.pipe(new PassThrough());
      // Until its buffers are full and it holds the body paused.
      while (req.readableFlowing !== false) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const read = await discardUnreadBody(req, maxBytes, PAUSE_MS);
    res.writeHead(417, read ? {} : { Connection: 'close' }).end(String(read));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  return server;
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

/** Sends `parts` (a number: a pause of that many ms) and resolves with the answer's body and Connection header. */
async function post(server: Server, headers: Record<string, string>, parts: readonly (Buffer | number)[]): Promise<{ body: string; connection: string | undefined }> {
  const { port } = server.address() as AddressInfo;
  const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/', headers, agent: false });
  req.on('error', () => {});
  const answered = once(req, 'response') as Promise<[IncomingMessage]>;
  for (const part of parts) {
    if (typeof part === 'number') await new Promise((resolve) => setTimeout(resolve, part));
    else if (!req.destroyed) req.write(part);
  }
  req.end();
  const [response] = await answered;
  let body = '';
  for await (const chunk of response) body += String(chunk);
  return { body, connection: response.headers.connection };
}

test('a whole body within the bound is read, in one part or several: the connection may carry another request', async (t) => {
  const server = await refusingServer(t);
  t.is((await post(server, { 'Content-Length': String(MAX_BYTES) }, [Buffer.alloc(MAX_BYTES)])).body, 'true');
  t.is((await post(server, { 'Transfer-Encoding': 'chunked' }, [Buffer.alloc(1000), 50, Buffer.alloc(1000)])).body, 'true');
});

test('a declared length over the bound is not read: the answer comes at once and closes the connection', async (t) => {
  const server = await refusingServer(t);
  // Only a little of the declared body is ever sent: waiting for the rest would never answer.
  t.like(await post(server, { 'Content-Length': String(MAX_BYTES + 1) }, [Buffer.alloc(10)]), { body: 'false', connection: 'close' });
});

test('a streamed body that grows past the bound stops being read', async (t) => {
  const server = await refusingServer(t);
  const part = Buffer.alloc(16 * 1024);
  t.like(await post(server, { 'Transfer-Encoding': 'chunked' }, [part, part, part, part, part, 2 * PAUSE_MS]), { body: 'false', connection: 'close' });
});

test('a body that pauses longer than the pause limit is given up', async (t) => {
  const server = await refusingServer(t);
  t.like(await post(server, { 'Content-Length': '2000' }, [Buffer.alloc(1000), 3 * PAUSE_MS, Buffer.alloc(1000)]), { body: 'false', connection: 'close' });
});

test('the rest of a body its handler read in part, then let go of, is read', async (t) => {
  const server = await refusingServer(t, { readFirst: 100, maxBytes: 64 * MAX_BYTES });
  // More than arrives at once: the handler stopped reading before the body was all in.
  const body = Buffer.alloc(16 * MAX_BYTES);
  t.is((await post(server, { 'Content-Length': String(body.length) }, [body])).body, 'true');
});

test('a body another reader holds (piped into a stream that reads no more) is left to it, and the connection closed', async (t) => {
  const server = await refusingServer(t, { pipeFirst: true, maxBytes: 64 * MAX_BYTES });
  const body = Buffer.alloc(16 * MAX_BYTES);
  t.like(await post(server, { 'Content-Length': String(body.length) }, [body]), { body: 'false', connection: 'close' });
});
