import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Agent, request as httpsRequest } from 'node:https';
import { writeFile } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { buildAuthorizationHeader } from '../../shared/src/protocol/index.ts';
import { REPO_ROOT } from '../../shared/src/dev-paths.ts';
import { mailboxRequest, openMailboxRequest, sendMessage } from '../support/http.ts';
import { openTlsConnection } from '../support/raw-tls.ts';
import { startServerProcess } from '../support/server-process.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';

const run = promisify(execFile);
const CLI = resolve(REPO_ROOT, 'client-cli/src/main.js');

test('kill -9 mid-upload: after a restart no partial message is in any inbox, and `meshbox send --resume` completes it', async (t) => {
  const server = await startServerProcess();
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    const chunks = [randomBytes(50_000), randomBytes(50_000), randomBytes(10_000)];
    const first = await mailboxRequest(server, lab, {
      method: 'POST',
      path: `/messageexchange/${lab.id}/outbox`,
      headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'CRASH', 'mex-Chunk-Range': '1:3' },
      body: chunks[0]!,
    });
    const messageId: string = first.json().message_id;

    // Chunk 2 is on the wire, half sent and in the server's hands, when the server dies.
    const authorization = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
    const cut = new Promise<void>((resolve) => {
      const req = openMailboxRequest(server, lab, {
        method: 'POST',
        path: `/messageexchange/${lab.id}/outbox/${messageId}/2`,
        headers: { 'mex-Chunk-Range': '2:3', 'content-length': String(chunks[1]!.length) },
        authorization,
      });
      req.on('error', () => resolve());
      req.on('response', () => resolve());
      req.write(chunks[1]!.subarray(0, 20_000));
    });
    t.true(await server.tokenClaimed(authorization), 'the server has chunk 2 in hand');
    t.is(await server.kill('SIGKILL'), null);
    await cut;
    await server.restart();

    const inbox = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox` });
    t.deepEqual(inbox.json().messages, []);
    const tracking = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` });
    t.like(tracking.json(), { status: 'uploading', stored_chunks: [1] });

    // The sender's CLI resumes: it asks tracking what is held and uploads the rest.
    const work = await temporaryDirectory(t, 'resume');
    const file = join(work, 'result.bin');
    await writeFile(file, Buffer.concat(chunks));
    for (const [name, pem] of [['lab.crt', lab.certPem], ['lab.key', lab.keyPem], ['ca.crt', server.caPem]] as const) {
      await writeFile(join(work, name), pem);
    }
    const resumed = await run(process.execPath, [
      CLI, '--url', server.origin, '--mailbox', lab.id, '--password', lab.password, '--shared-key', server.sharedKey,
      '--cert', join(work, 'lab.crt'), '--key', join(work, 'lab.key'), '--ca', join(work, 'ca.crt'),
      'send', '--resume', messageId, file, '--chunk-size', '50000', '--json',
    ]);
    t.like(JSON.parse(resumed.stdout), { messageId, uploadedChunks: 2 });
    const received: Buffer[] = [];
    for (const n of [1, 2, 3]) {
      const path = n === 1 ? `/messageexchange/${gp.id}/inbox/${messageId}` : `/messageexchange/${gp.id}/inbox/${messageId}/${n}`;
      received.push((await mailboxRequest(server, gp, { path })).body);
    }
    t.true(Buffer.concat(received).equals(Buffer.concat(chunks)));
  } finally {
    await server.stop();
  }
});

/**
 * Stops the server with `signal` while a send is in flight: it must stop taking connections,
 * finish the send, and exit with `exitCode`; the message sent is there after a restart.
 * Returns what the stopped process wrote.
 */
async function stopsFinishingInFlight(t: ExecutionContext, signal: NodeJS.Signals, exitCode: number, command?: readonly string[]): Promise<string> {
  const server = await startServerProcess({}, command ? { command } : {});
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    const body = randomBytes(200_000);
    const authorization = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
    const req = openMailboxRequest(server, lab, {
      method: 'POST',
      path: `/messageexchange/${lab.id}/outbox`,
      headers: { 'mex-To': gp.id, 'mex-WorkflowID': 'SHUTDOWN', 'content-length': String(body.length) },
      authorization,
    });
    const inFlight = new Promise<{ status: number; text: string }>((resolve, reject) => {
      req.on('error', reject);
      req.on('response', (response) => {
        let text = '';
        response.on('data', (part: Buffer) => (text += part.toString()));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
      });
    });
    req.write(body.subarray(0, 100_000));
    t.true(await server.tokenClaimed(authorization), 'the request is in the server\'s hands before it is told to stop');
    const exited = server.kill(signal);
    t.true(await server.listenerClosed(), 'stopping');
    await t.throwsAsync(sendMessage(server, lab, gp, 'too late'), undefined, 'no new connections while stopping');
    // The rest arrives only now: the request is still in flight while the server stops.
    req.end(body.subarray(100_000));
    const response = await inFlight;
    t.is(response.status, 202);
    t.is(await exited, exitCode);
    const output = server.output();

    await server.restart();
    const messageId = JSON.parse(response.text).message_id;
    const download = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` });
    t.true(download.body.equals(body));
    return output;
  } finally {
    await server.stop();
  }
}

test('SIGTERM: the server stops taking connections, finishes the request in flight, and exits 0', async (t) => {
  await stopsFinishingInFlight(t, 'SIGTERM', 0);
});

test('a defect that escapes every handler (an event listener that throws) is logged as fatal, with its stack; the server then stops as at SIGTERM, finishing the request in flight, and exits 1', async (t) => {
  // SIGUSR2 makes the process throw out of a listener of its own.
  const output = await stopsFinishingInFlight(t, 'SIGUSR2', 1, ['--import', resolve(REPO_ROOT, 'test/support/defect-on-signal.ts'), resolve(REPO_ROOT, 'server/src/main.ts')]);
  const fatal = output.split('\n').find((line) => line.includes('"level":60'));
  t.truthy(fatal, output);
  t.like(JSON.parse(fatal!), { origin: 'uncaughtException', err: { message: 'a defect, staged' } });
  t.regex(fatal!, /defect-on-signal\.ts/, 'with its stack');
});

test('SIGTERM: an answer given while stopping closes its kept-alive connection, so it carries no more requests; a repeated signal does not end the process mid-request', async (t) => {
  const server = await startServerProcess();
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: server.caPem });
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    /** A send on the kept-alive agent: its body's first 1,000 bytes go now, the rest on finish(). */
    const startSend = (body: Buffer) => {
      const authorization = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
      const req = httpsRequest(new URL(`/messageexchange/${lab.id}/outbox`, server.origin), {
        method: 'POST',
        agent,
        cert: lab.certPem,
        key: lab.keyPem,
        headers: { accept: 'application/vnd.mesh.v2+json', authorization, 'mex-To': gp.id, 'mex-WorkflowID': 'SHUTDOWN', 'content-length': String(body.length) },
      });
      const answer = new Promise<{ status: number; connection: string | undefined; socket: unknown }>((resolve, reject) => {
        req.on('error', reject);
        req.on('response', (response) => {
          response.resume();
          response.on('end', () => resolve({ status: response.statusCode ?? 0, connection: response.headers.connection, socket: req.socket }));
        });
      });
      req.write(body.subarray(0, 1000));
      return { authorization, answer, finish: () => req.end(body.subarray(1000)) };
    };
    const first = startSend(randomBytes(2000));
    first.finish();
    const kept = await first.answer;
    t.is(kept.status, 202);
    t.is(kept.connection, 'keep-alive');

    const inFlight = startSend(randomBytes(200_000));
    t.true(await server.tokenClaimed(inFlight.authorization), "the request is in the server's hands before it is told to stop");
    const exited = server.kill('SIGTERM');
    t.true(await server.listenerClosed(), 'stopping');
    const again = server.kill('SIGTERM');
    inFlight.finish();
    const answered = await inFlight.answer;
    t.is(answered.status, 202, 'served, the second signal notwithstanding');
    t.is(answered.socket, kept.socket, 'on the kept-alive connection');
    t.is(answered.connection, 'close', 'which is not kept for more requests');
    t.is(await exited, 0);
    t.is(await again, 0);
  } finally {
    agent.destroy();
    await server.stop();
  }
});

test('SIGTERM: connections without a request (one still in its TLS handshake, one handshaken that has sent nothing) are closed after a 2 s grace, not waited for past the deadline', async (t) => {
  // Headers (and so handshakes) not timed out before the stop's deadline and its last resort have passed.
  const server = await startServerProcess({ MESHBOX_HEADERS_TIMEOUT_SECONDS: '300', MESHBOX_LOG_LEVEL: 'info' });
  const held: Socket[] = [];
  try {
    const mailbox = await server.createMailbox();
    const { port, hostname } = new URL(server.origin);
    const unshaken = createConnection(Number(port), hostname);
    held.push(unshaken);
    await once(unshaken, 'connect');
    held.push(await openTlsConnection(server, mailbox));
    // The server has taken the bare TCP connection too: it has answered one made after it.
    t.is((await mailboxRequest(server, mailbox, { path: `/messageexchange/${mailbox.id}/inbox` })).status, 200);
    const closed = held.map((socket) => new Promise((resolve) => socket.on('error', () => undefined).on('close', resolve)));
    t.is(await server.kill('SIGTERM'), 0, server.output());
    await Promise.all(closed);
    t.false(server.output().includes('shutdown deadline passed'), server.output());
  } finally {
    for (const socket of held) socket.destroy();
    await server.stop();
  }
});

test('SIGTERM: a send its client cuts off while the server stops gives its token back before Redis is closed, so its identical retry is sent after the restart', async (t) => {
  const server = await startServerProcess();
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    const body = randomBytes(200_000);
    const headers = { 'mex-To': gp.id, 'mex-WorkflowID': 'SHUTDOWN', 'content-length': String(body.length) };
    const authorization = buildAuthorizationHeader({ mailboxId: lab.id, password: lab.password, sharedKey: server.sharedKey });
    const req = openMailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox`, headers, authorization });
    const cut = new Promise<void>((resolve) => req.on('error', () => resolve()).on('close', resolve));
    req.write(body.subarray(0, 100_000));
    t.true(await server.tokenClaimed(authorization), 'the request is in the server\'s hands before it is told to stop');
    const exited = server.kill('SIGTERM');
    t.true(await server.listenerClosed(), 'stopping');
    req.destroy();
    await cut;
    t.is(await exited, 0);

    await server.restart();
    const retry = await mailboxRequest(server, lab, { method: 'POST', path: `/messageexchange/${lab.id}/outbox`, headers, authorization, body });
    t.is(retry.status, 202, retry.body.toString());
    const download = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${retry.json().message_id}` });
    t.true(download.body.equals(body));
  } finally {
    await server.stop();
  }
});
