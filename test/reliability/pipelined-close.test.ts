import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import test from 'ava';
import { buildAuthorizationHeader } from '../../shared/src/protocol/index.ts';
import { REPO_ROOT } from '../../shared/src/dev-paths.ts';
import { waitFor } from '../../scripts/services/processes.ts';
import { mailboxRequest } from '../support/http.ts';
import type { TestMailbox } from '../support/harness.ts';
import { type ServerProcess, startServerProcess } from '../support/server-process.ts';

/*
 * A connection the server closes after an answer (it is stopping, or a CRL was loaded since the
 * connection's handshake) may hold requests pipelined behind that answer: the app handles them
 * all the same, so only the newest answer may close the connection, or their answers are lost
 * (a send delivered, its client told nothing, and sending it again).
 */

const run = promisify(execFile);
const CLI = resolve(REPO_ROOT, 'client-cli/src/main.js');

/** A kept-alive connection of the lab's, and what comes back on it; `sendTwice` pipelines two sends to the GP on it at once. */
async function pipeliningClient(server: ServerProcess, lab: TestMailbox, gp: TestMailbox) {
  const { port } = new URL(server.origin);
  const socket = tlsConnect({ host: '127.0.0.1', port: Number(port), servername: 'localhost', cert: lab.certPem, key: lab.keyPem, ca: server.caPem });
  socket.on('error', () => {});
  let received = '';
  socket.on('data', (data: Buffer) => (received += data.toString('latin1')));
  let closed = false;
  socket.on('close', () => (closed = true));
  await once(socket, 'secureConnect');
  const send = () =>
    `POST /messageexchange/${lab.id}/outbox HTTP/1.1\r\nHost: x\r\nAuthorization: ${buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey })}\r\n` +
    `Accept: application/vnd.mesh.v2+json\r\nContent-Type: application/octet-stream\r\nmex-To: ${gp.id}\r\nmex-WorkflowID: W\r\nContent-Length: 4\r\n\r\nsent`;
  return {
    sendTwice: () => void socket.write(send() + send()),
    closed: () => closed,
    answers: () => received.match(/HTTP\/1\.1 \d{3}/g) ?? [],
  };
}

test('requests pipelined on a connection as the server stops: each request the server handles is answered, none is done silently behind a closed connection', async (t) => {
  const server = await startServerProcess();
  t.teardown(() => server.stop());
  const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
  const client = await pipeliningClient(server, lab, gp);
  // The server is told to stop; a client whose connection is open sends two requests on it at once (within the 2 s given to a request on its way).
  const exited = server.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 300));
  client.sendTwice();
  await waitFor(async () => client.closed(), 10_000, 20);
  await exited;
  const answers = client.answers();
  t.log(answers);
  await server.restart();
  const inbox = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox` });
  const delivered: string[] = inbox.json().messages;
  t.log(`delivered: ${delivered.length}`);
  t.is(delivered.length, answers.filter((a) => a === 'HTTP/1.1 202').length, `${delivered.length} sends delivered, but the client got ${JSON.stringify(answers)} and a closed connection`);
});

test('a CRL reloaded (another certificate revoked) while a client has requests pipelined on its connection: each request the server handles is answered, none is done silently behind a closed connection', async (t) => {
  const server = await startServerProcess({ MESHBOX_CRL_RELOAD_SECONDS: '0.5' }, { withCrl: true });
  t.teardown(() => server.stop());
  const [lab, gp, other] = [await server.createMailbox(), await server.createMailbox(), await server.createMailbox()];
  const client = await pipeliningClient(server, lab, gp);
  // Another organisation's certificate is revoked: a new list, loaded while this connection is open.
  await run(process.execPath, [CLI, 'admin', 'cert', 'revoke', other.id], { env: { ...process.env, ...server.adminEnvironment } });
  const otherRefused = () => mailboxRequest(server, other, { path: '/messageexchange/_ping' }).then(() => false, () => true);
  t.true(await waitFor(otherRefused, 10_000), 'the new list is loaded');

  // Two sends pipelined on the connection.
  client.sendTwice();
  await waitFor(async () => client.closed() || client.answers().length >= 2, 10_000, 20);
  // Time for a second answer to come, if one is to.
  await new Promise((r) => setTimeout(r, 1000));
  const answers = client.answers();

  const gpToken = () => buildAuthorizationHeader({ mailboxId: gp.id, password: gp.password, sharedKey: server.sharedKey });
  const inbox = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox`, authorization: gpToken() });
  const delivered: string[] = inbox.json().messages;
  t.log(`messages in ${gp.id}'s inbox: ${delivered.length}`);
  // Either the send is answered (202, its message id in hand), or it was not done: never delivered with its answer lost.
  if (answers.length < 2) t.is(delivered.length, answers.length, `the send was delivered (${delivered.join(',')}) but its client got only ${JSON.stringify(answers)} and a closed connection`);
  else t.is(answers[1], 'HTTP/1.1 202');
});
