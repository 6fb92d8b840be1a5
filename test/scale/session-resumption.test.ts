import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect } from 'node:tls';
import { promisify } from 'node:util';
import test from 'ava';
import { REPO_ROOT } from '../../shared/src/dev-paths.ts';
import { describeCertificate, issueMailboxCertificate } from '../../shared/src/pki/index.ts';
import type { TestMailbox } from '../support/harness.ts';
import { type ServerProcess, startServerProcess, viaServeCommand } from '../support/server-process.ts';

const run = promisify(execFile);

interface Visit {
  /** The health route's status (0: the connection was refused or closed unanswered). */
  readonly status: number;
  readonly resumed: boolean;
  /** The session to resume next time (as Node's https agent keeps it). */
  readonly session: Buffer | undefined;
}

/** One request on a new TLS connection, offering `session` for resumption. */
function visit(server: ServerProcess, mailbox: TestMailbox, session?: Buffer): Promise<Visit> {
  const url = new URL(server.origin);
  return new Promise((done) => {
    const socket = connect({
      host: url.hostname,
      port: Number(url.port),
      ca: server.caPem,
      cert: mailbox.certPem,
      key: mailbox.keyPem,
      servername: 'localhost',
      ...(session ? { session } : {}),
    });
    let answer = '';
    let next: Buffer | undefined;
    let resumed = false;
    socket.on('session', (ticket: Buffer) => (next = ticket));
    socket.on('secureConnect', () => {
      resumed = socket.isSessionReused();
      socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    socket.on('data', (part: Buffer) => (answer += part.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => done({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0), resumed, session: next }));
  });
}

/** Runs `body` with a ticket key file; the server processes it puts in `processes` are stopped after. */
async function withTicketKeyFile(body: (keyFile: string, processes: ServerProcess[]) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'meshbox-tickets-'));
  const keyFile = join(dir, 'ticket.key');
  await writeFile(keyFile, randomBytes(48), { mode: 0o600 });
  const processes: ServerProcess[] = [];
  try {
    await body(keyFile, processes);
  } finally {
    for (const server of processes.reverse()) await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

test('processes given one ticket key file resume each other\'s TLS sessions, however started; processes with their own do not', async (t) => {
  await withTicketKeyFile(async (keyFile, processes) => {
    const a = await startServerProcess({ MESHBOX_TLS_TICKET_KEY_FILE: keyFile });
    processes.push(a);
    // Started another way (Node's own session context would be its command line).
    const b = await startServerProcess(
      { MESHBOX_TLS_TICKET_KEY_FILE: keyFile, MESHBOX_ROLE: 'api' },
      { deployment: a.deployment, command: viaServeCommand() },
    );
    processes.push(b);
    const own = await startServerProcess({}, { deployment: a.deployment });
    processes.push(own);
    const mailbox = await a.createMailbox();

    const first = await visit(a, mailbox);
    t.is(first.status, 200);
    t.false(first.resumed);
    t.truthy(first.session, 'the server issued a session ticket');
    const atB = await visit(b, mailbox, first.session);
    t.is(atB.status, 200);
    t.true(atB.resumed, 'a session from A resumes at B');
    const atOwn = await visit(own, mailbox, first.session);
    t.is(atOwn.status, 200, 'a session that cannot resume falls back to a full handshake');
    t.false(atOwn.resumed);
    const again = await visit(own, mailbox, atOwn.session);
    t.true(again.resumed, 'a process without the file resumes its own sessions');
    t.false((await visit(a, mailbox, atOwn.session)).resumed);
  });
});

test('a certificate revoked after its session began cannot resume it: a new CRL ends every earlier session', async (t) => {
  const server = await startServerProcess({ MESHBOX_CRL_RELOAD_SECONDS: '0.5', MESHBOX_LOG_LEVEL: 'info' }, { withCrl: true });
  try {
    const [alice, bob] = [await server.createMailbox(), await server.createMailbox()];
    const aliceFirst = await visit(server, alice);
    const bobFirst = await visit(server, bob);
    t.true((await visit(server, alice, aliceFirst.session)).resumed, 'sessions resume while the CRL is unchanged');

    await run(process.execPath, [resolve(REPO_ROOT, 'client-cli/src/main.js'), 'admin', 'cert', 'revoke', alice.id], {
      env: { ...process.env, ...server.adminEnvironment },
    });
    const deadline = Date.now() + 15_000;
    while (!server.output().includes('revocation list reloaded') && Date.now() < deadline) await new Promise((wait) => setTimeout(wait, 100));
    t.true(server.output().includes('revocation list reloaded'), server.output());

    const alicesLast = await visit(server, alice, aliceFirst.session);
    t.is(alicesLast.status, 0, 'the revoked certificate gets no answer, even on the health route, which looks nothing up');
    t.false(alicesLast.resumed);
    const bobsNext = await visit(server, bob, bobFirst.session);
    t.is(bobsNext.status, 200);
    t.false(bobsNext.resumed, 'his session began under the old list too');
  } finally {
    await server.stop();
  }
});

test('a session resumes within MESHBOX_TLS_SESSION_SECONDS, and not after', async (t) => {
  const brief = await startServerProcess({ MESHBOX_TLS_SESSION_SECONDS: '1' });
  const usual = await startServerProcess({}, { deployment: brief.deployment });
  try {
    const mailbox = await brief.createMailbox();
    const [briefSession, usualSession] = [(await visit(brief, mailbox)).session, (await visit(usual, mailbox)).session];
    await new Promise((wait) => setTimeout(wait, 2500));
    const late = await visit(brief, mailbox, briefSession);
    t.is(late.status, 200);
    t.false(late.resumed, 'a session past its lifetime is not resumed');
    t.true((await visit(usual, mailbox, usualSession)).resumed, 'the default lifetime outlasts a short wait');
  } finally {
    await usual.stop();
    await brief.stop();
  }
});

test('a session does not outlive the trust it began under: not past another CA, nor past its certificate\'s end', async (t) => {
  await withTicketKeyFile(async (keyFile, processes) => {
    const first = await startServerProcess({ MESHBOX_TLS_TICKET_KEY_FILE: keyFile });
    processes.push(first);
    // The same ticket key, another CA: as after a CA is replaced.
    const otherCa = await startServerProcess({ MESHBOX_TLS_TICKET_KEY_FILE: keyFile });
    processes.push(otherCa);
    const mailbox = await first.createMailbox();
    const session = (await visit(first, mailbox)).session;
    t.true((await visit(first, mailbox, session)).resumed);
    const elsewhere = await visit(otherCa, mailbox, session);
    t.is(elsewhere.status, 0, 'a certificate of a CA not trusted there is refused, session or not');
    t.false(elsewhere.resumed);

    // Long enough for two visits on a loaded machine; the wait below is from its end, not its start.
    const { certPem, keyPem } = issueMailboxCertificate({ ca: first.deployment.ca, mailboxId: mailbox.id, validityDays: 15 / 86_400 });
    const brief = { ...mailbox, certPem, keyPem };
    const briefSession = (await visit(first, brief)).session;
    t.true((await visit(first, brief, briefSession)).resumed, 'resumed while the certificate is in force');
    await new Promise((wait) => setTimeout(wait, Math.max(0, describeCertificate(certPem).notAfter.getTime() - Date.now()) + 1_000));
    const expired = await visit(first, brief, briefSession);
    t.is(expired.status, 0, 'an expired certificate gets no answer by resuming');
  });
});
