import { createHash } from 'node:crypto';
import test from 'ava';
import { readText, streamingRequest } from '../support/http.ts';
import { MiB, PayloadGenerator } from '../support/payload.ts';
import { type ServerProcess, startServerProcess } from '../support/server-process.ts';

const CHUNK_BYTES = 100 * MiB;
const MESSAGE_BYTES = 1024 * MiB + 12_345;
const RSS_LIMIT = 256 * MiB;

let server: ServerProcess;

test.before(async () => {
  server = await startServerProcess();
});

test.after.always(async () => {
  await server?.stop();
});

test('a 1 GiB message streams through a server whose peak RSS stays under 256 MiB', async (t) => {
  const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
  const payload = new PayloadGenerator();
  const total = Math.ceil(MESSAGE_BYTES / CHUNK_BYTES);
  const sentHash = createHash('sha256');
  let messageId = '';
  for (let n = 1; n <= total; n++) {
    const offset = (n - 1) * CHUNK_BYTES;
    const length = Math.min(CHUNK_BYTES, MESSAGE_BYTES - offset);
    const body = payload.stream(offset, length);
    body.on('data', (part: Buffer) => sentHash.update(part));
    const path = n === 1 ? `/messageexchange/${lab.id}/outbox` : `/messageexchange/${lab.id}/outbox/${messageId}/${n}`;
    const response = await streamingRequest(server, lab, {
      method: 'POST',
      path,
      headers: {
        'mex-To': gp.id,
        'mex-WorkflowID': 'BULK',
        'mex-Chunk-Range': `${n}:${total}`,
        'content-length': String(length),
        'content-type': 'application/octet-stream',
      },
      body,
    });
    const text = await readText(response);
    t.is(response.statusCode, 202, text);
    if (n === 1) messageId = JSON.parse(text).message_id;
  }

  t.log(`peak after upload ${((await server.peakRssBytes()) / MiB).toFixed(1)} MiB`);
  const receivedHash = createHash('sha256');
  let received = 0;
  for (let n = 1; n <= total; n++) {
    const path = n === 1 ? `/messageexchange/${gp.id}/inbox/${messageId}` : `/messageexchange/${gp.id}/inbox/${messageId}/${n}`;
    const response = await streamingRequest(server, gp, { method: 'GET', path });
    t.is(response.statusCode, n < total ? 206 : 200);
    for await (const part of response) {
      receivedHash.update(part as Buffer);
      received += (part as Buffer).length;
    }
  }
  t.is(received, MESSAGE_BYTES);
  t.is(receivedHash.digest('hex'), sentHash.digest('hex'));

  const peak = await server.peakRssBytes();
  t.log(`server peak RSS ${(peak / MiB).toFixed(1)} MiB for a ${(MESSAGE_BYTES / MiB).toFixed(0)} MiB message`);
  t.true(peak < RSS_LIMIT, `peak RSS ${peak} bytes`);
});
