// A Redis command whose answer was lost with its connection is sent again by ioredis: a send's
// record may then be written by the first run, and found by the second.
import test from 'ava';
import { Readable } from 'node:stream';
import { sendMessage as sendThroughDomain } from '../../server/src/domain/send.ts';
import { sendMetadata } from '../../server/src/http/send-headers.ts';
import { startTestServer, type TestMailbox, type TestServer } from '../support/harness.ts';
import { overriding } from '../support/overriding.ts';

let server: TestServer;
let lab: TestMailbox;

test.before(async () => {
  server = await startTestServer({ worker: false });
  lab = await server.createMailbox();
});

test.after.always(async () => {
  await server?.close();
});

/** The message store as ioredis behaves when its connection breaks once: the first record is written, and its answer is "it exists". */
function createAnsweredTwice() {
  const real = server.services.messages;
  const created: string[] = [];
  const messages = overriding(real, {
    create: async (...args: Parameters<typeof real.create>) => {
      const outcome = await real.create(...args);
      created.push(args[0]);
      return created.length === 1 && (outcome === 'accepted' || outcome === 'uploading') ? 'exists' : outcome;
    },
  });
  return { services: { ...server.services, messages }, created };
}

for (const [kind, bytes] of [['a small message, kept with its record', 100], ['a message in object storage', 100_000]] as const) {
  test(`${kind}: a record-creating command run twice records one message, under the id the send answers`, async (t) => {
    const gp = await server.createMailbox();
    const { services, created } = createAnsweredTwice();
    const { chunk: _chunk, ...metadata } = sendMetadata({ 'mex-to': gp.id, 'mex-workflowid': 'RESENT', 'mex-localid': `resent-${bytes}` });
    const body = Buffer.alloc(bytes, 'r');
    const sender = (await server.services.mailboxes.get(lab.id))!;
    const { messageId } = await sendThroughDomain(services, { sender, metadata, body: { stream: Readable.from([body]), contentLength: body.length, contentEncoding: '' } });
    t.deepEqual(created, [messageId], 'one record, the one answered');
    t.deepEqual((await server.services.messages.inboxPage(gp.id, 10, undefined)).messageIds, [messageId]);
  });
}
