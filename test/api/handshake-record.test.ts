import test from 'ava';
import { startTestServer, type TestMailbox, type TestServer } from '../support/harness.ts';
import { mailboxRequest } from '../support/http.ts';
import { overriding } from '../support/overriding.ts';

let server: TestServer;
let lab: TestMailbox;

test.before(async () => {
  server = await startTestServer();
  lab = await server.createMailbox({ name: 'Pathology lab' });
});

test.after.always(async () => {
  await server?.close();
});

const handshake = (headers: Record<string, string> = {}) => mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}`, headers });

test.serial("a client's handshake headers are kept without terminal control characters (C1 as well as C0)", async (t) => {
  // Node's HTTP parser passes obs-text bytes 0x80-0xFF as Latin-1: 0x9B is U+009B, CSI, an 8-bit terminal escape.
  const response = await handshake({ 'mex-ClientVersion': 'evil\u009b2J\u009b31mRED', 'mex-OSName': 'Linux\u0085x' });
  t.is(response.status, 200);
  const recorded = (await server.services.mailboxes.get(lab.id, { fresh: true }))?.lastHandshake?.client;
  t.truthy(recorded);
  // eslint-disable-next-line no-control-regex
  t.notRegex(recorded!, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, `stored raw, printed raw by admin mailbox show/list (JSON.stringify keeps U+0080-U+009F): ${JSON.stringify(recorded)}`);
});

test.serial('a handshake whose record cannot be written soon is answered all the same, without waiting on Redis', async (t) => {
  const services = server.services as { mailboxes: TestServer['services']['mailboxes'] };
  const real = services.mailboxes;
  // Redis stalled after the request was authenticated (a failover, a slow fork): the write neither succeeds nor fails for a while.
  services.mailboxes = overriding(real, { recordHandshake: () => new Promise<void>(() => undefined) });
  try {
    const answered = await Promise.race([handshake().then((response) => response.status), new Promise((resolve) => setTimeout(resolve, 20_000, 'no answer in 20 s').unref())]);
    t.is(answered, 200);
  } finally {
    services.mailboxes = real;
  }
});

test("POST /{mailbox}/update, which MESH's sandbox answers 200 with nothing (a client's check in), is answered so, for the mailbox authenticated only", async (t) => {
  const update = await mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/update` });
  t.is(update.status, 200);
  t.is(update.body.length, 0);
  const other = await server.createMailbox();
  const refused = await mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${other.id}/update` });
  t.is(refused.status, 403);
});
