// A Redis command whose answer was lost with its connection is sent again by ioredis: a send's
// record may then be written by the first run, and found by the second.
import test from 'ava';
import { Readable } from 'node:stream';
import { sendMessage as sendThroughDomain } from '../../server/src/domain/send.ts';
import { sendMetadata } from '../../server/src/http/send-headers.ts';
import { buildAuthorizationHeader } from '../../shared/src/protocol/index.ts';
import { mailboxRequest } from '../support/http.ts';
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

test('a send whose record was written but whose answer from Redis was lost (503) keeps its token: its identical retry is told the message, not sent again', async (t) => {
  let firstRecord: string | undefined;
  const failing = await startTestServer({
    worker: false,
    appServices: (services) => {
      const real = services.messages;
      const messages = overriding(real, {
        create: async (...args: Parameters<typeof real.create>) => {
          const outcome = await real.create(...args);
          if (firstRecord !== undefined) return outcome;
          firstRecord = args[0];
          throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
        },
      });
      return { ...services, messages };
    },
  });
  try {
    const [sender, recipient] = [await failing.createMailbox(), await failing.createMailbox()];
    const authorization = buildAuthorizationHeader({ mailboxId: sender.id, password: sender.password, sharedKey: failing.sharedKey });
    const send = () =>
      mailboxRequest(failing, sender, { method: 'POST', path: `/messageexchange/${sender.id}/outbox`, authorization, headers: { 'mex-To': recipient.id, 'mex-WorkflowID': 'LOST_REPLY' }, body: 'once' });
    const first = await send();
    t.is(first.status, 503);
    // The token's fate is settled once the first request's connection is done with it.
    let retried = first;
    for (let attempt = 0; attempt < 50 && retried.status === 503; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      retried = await send();
    }
    t.is(retried.status, 202);
    // The first try stopped before delivering: its lifecycle check delivers it. A second message would be a duplicate.
    t.is(retried.json().message_id, firstRecord, 'the message the first try recorded');
    t.deepEqual((await failing.services.messages.inboxPage(recipient.id, 10, undefined)).messageIds, [], 'no second message delivered');
  } finally {
    await failing.close();
  }
});
