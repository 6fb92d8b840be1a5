import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { MeshConnectionError } from '../../client-cli/src/client/errors.ts';
import { MeshClient } from '../../client-cli/src/client/mesh-client.ts';
import { REPO_ROOT } from '../../shared/src/dev-paths.ts';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { Agent, request } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { pino } from 'pino';
import { createApp } from '../../server/src/app.ts';
import { createMeshServer } from '../../server/src/https-server.ts';
import { checkRevocationList, reloadRevocationList } from '../../server/src/revocation-list.ts';
import { createCertificateAuthority, createRevocationList, issueMailboxCertificate, issueServerCertificate } from '../../shared/src/pki/index.ts';
import { startTestServer, type TestMailbox } from '../support/harness.ts';
import { mailboxRequest } from '../support/http.ts';
import { waitFor } from '../../scripts/services/processes.ts';
import { type ServerProcess, startServerProcess } from '../support/server-process.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';

const run = promisify(execFile);
const CLI = resolve(REPO_ROOT, 'client-cli/src/main.js');

test('a revoked certificate is refused with 403 at once, on every MESH endpoint, while the mailbox password still works with a new certificate', async (t) => {
  const server = await startTestServer();
  try {
    const alice = await server.createMailbox();
    const inbox = `/messageexchange/${alice.id}/inbox`;
    t.is((await mailboxRequest(server, alice, { path: inbox })).status, 200);
    const [serial] = await server.services.certificates.issuedTo(alice.id);
    t.true(await server.services.certificates.revoke(serial!, new Date()));
    t.false(await server.services.certificates.revoke(serial!, new Date()), 'revoking twice is a no-op');

    const refused = await mailboxRequest(server, alice, { path: inbox });
    t.is(refused.status, 403);
    t.is(refused.json().detail[0].code, '403');
    t.is((await mailboxRequest(server, alice, { path: '/messageexchange/_ping' })).status, 403);
    // Health endpoints answer any certificate of our CA, so they work while Redis is away.
    t.is((await mailboxRequest(server, alice, { path: '/readyz' })).status, 200);
  } finally {
    await server.close();
  }
});

test('a certificate revoked (no CRL) while its kept-alive connection is open is refused on that connection once the 30 s its check stands have passed, and the connection closed', async (t) => {
  const clock = { now: Date.now() };
  const server = await startTestServer({ worker: false, appServices: (services) => ({ ...services, now: () => new Date(clock.now) }) });
  t.teardown(() => server.close());
  const alice = await server.createMailbox();
  const inbox = `/messageexchange/${alice.id}/inbox`;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const sockets = new Set<unknown>();
  const onConnection = (socket: unknown): void => void sockets.add(socket);
  server.httpsServer.on('secureConnection', onConnection);
  t.teardown(() => server.httpsServer.off('secureConnection', onConnection));
  t.is((await mailboxRequest(server, alice, { path: inbox, agent })).status, 200);
  const [serial] = await server.services.certificates.issuedTo(alice.id);
  t.true(await server.services.certificates.revoke(serial!, new Date()));
  clock.now += 30_000;
  t.is((await mailboxRequest(server, alice, { path: inbox, agent })).status, 200, 'its check stands 30 s: one lookup per connection per 30 s');
  clock.now += 1;
  const refused = await mailboxRequest(server, alice, { path: inbox, agent });
  t.is(refused.status, 403);
  t.is(sockets.size, 1, 'all on the one kept-alive connection');
  t.is(refused.headers.connection, 'close');
});

test('admin cert revoke publishes a CRL that the running server loads without a restart: the revoked certificate fails the TLS handshake, which the server logs and counts', async (t) => {
  const server = await startServerProcess({ MESHBOX_CRL_RELOAD_SECONDS: '0.5', MESHBOX_LOG_LEVEL: 'info' }, { withCrl: true });
  try {
    const [alice, bob] = [await server.createMailbox(), await server.createMailbox()];
    t.is((await mailboxRequest(server, alice, { path: `/messageexchange/${alice.id}/inbox` })).status, 200);

    const { stdout } = await run(process.execPath, [CLI, 'admin', 'cert', 'revoke', alice.id], { env: { ...process.env, ...server.adminEnvironment } });
    t.regex(stdout, /revoked: serial [0-9a-f]+/);
    t.regex(stdout, /crl\.pem/);
    t.regex(await readFile(join(server.pkiDir, 'crl.pem'), 'utf8'), /BEGIN X509 CRL/);

    t.true(await eventually(() => handshakeRefused(server, alice)), 'the TLS handshake refuses the revoked certificate');
    t.is((await mailboxRequest(server, bob, { path: `/messageexchange/${bob.id}/inbox` })).status, 200);
    // With the client's address: what an operator needs to find the system still using it.
    t.true(await eventually(async () => /"reason":"CERT_REVOKED","client":"[0-9a-f.:]+".*"msg":"TLS handshake refused"/.test(server.output())), server.output());
    const metrics = (await mailboxRequest(server, bob, { path: '/metrics' })).body.toString();
    t.regex(metrics, /meshbox_tls_handshake_failures_total\{reason="CERT_REVOKED"\} [1-9]/);
    // The client sees only a closed connection: the CLI says what that may mean.
    const client = new MeshClient(
      { url: server.origin, mailboxId: alice.id, password: alice.password, sharedKey: server.sharedKey, certPem: alice.certPem, keyPem: alice.keyPem, caPem: server.caPem },
      { retries: 0 },
    );
    try {
      const refused = await t.throwsAsync(client.count(), { instanceOf: MeshConnectionError });
      t.true(refused?.closedOnConnect);
    } finally {
      client.close();
    }
    t.regex(metrics, /meshbox_crl_next_update_timestamp_seconds \d{10}/);
  } finally {
    await server.stop();
  }
});

test('a CRL the server cannot use (half written, signed by another CA, or gone) is not loaded: the server keeps running on the previous one and says why, once', async (t) => {
  // Debug: each reload says it has looked at the file, which the test counts.
  const server = await startServerProcess({ MESHBOX_CRL_RELOAD_SECONDS: '0.5', MESHBOX_LOG_LEVEL: 'debug' }, { withCrl: true });
  try {
    const [alice, bob] = [await server.createMailbox(), await server.createMailbox()];
    await run(process.execPath, [CLI, 'admin', 'cert', 'revoke', alice.id], { env: { ...process.env, ...server.adminEnvironment } });
    t.true(await eventually(() => handshakeRefused(server, alice)));
    const crlFile = join(server.pkiDir, 'crl.pem');
    const published = await readFile(crlFile, 'utf8');

    // A reload may also catch a file half-way through its writing (and refuse that too).
    await writeFile(crlFile, published.slice(0, published.length / 2));
    t.true(await eventually(async () => server.output().includes('revocation list not loaded: no X509 CRL in it')), server.output());
    await writeFile(crlFile, createRevocationList({ ca: createCertificateAuthority({ commonName: 'another CA' }), revoked: [] }));
    t.true(await eventually(async () => server.output().includes('not signed by the CA the server trusts')), server.output());

    // Still the published list: the revoked certificate refused, the others served.
    t.true(await handshakeRefused(server, alice));
    t.is((await mailboxRequest(server, bob, { path: `/messageexchange/${bob.id}/inbox` })).status, 200);

    // A file gone is said once, not at every reload (four more here), and so is its return.
    const said = (text: string) => server.output().split(text).length - 1;
    const unreadable = () => said('cannot read the revocation list');
    await rm(crlFile);
    t.true(await eventually(async () => unreadable() === 1), server.output());
    const reloads = said('revocation list looked at');
    t.true(await waitFor(async () => said('revocation list looked at') >= reloads + 4, 30_000), server.output());
    t.is(unreadable(), 1, server.output());
    await writeFile(crlFile, published);
    t.true(await eventually(async () => server.output().includes('the revocation list can be read again')), server.output());
    t.true(await handshakeRefused(server, alice));
  } finally {
    await server.stop();
  }
});

/** Whether a request with this mailbox's certificate fails before any HTTP answer (the handshake). */
test('a reloaded CRL closes idle kept-alive connections: a certificate revoked meanwhile loses the health routes too, which look nothing up', async (t) => {
  const server = await startServerProcess({ MESHBOX_CRL_RELOAD_SECONDS: '0.5' }, { withCrl: true });
  const monitor = await server.createMailbox();
  const agent = new Agent({ keepAlive: true, maxSockets: 1, cert: monitor.certPem, key: monitor.keyPem, ca: server.caPem });
  const health = (): Promise<number | 'refused'> =>
    new Promise((resolve) => {
      request(`${server.origin}/healthz`, { agent }, (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      })
        .on('error', () => resolve('refused'))
        .end();
    });
  try {
    t.is(await health(), 200);
    t.is(await health(), 200);
    t.is(Object.values(agent.freeSockets).flat().length, 1, 'one connection, kept alive');
    await run(process.execPath, [CLI, 'admin', 'cert', 'revoke', monitor.id], { env: { ...process.env, ...server.adminEnvironment } });
    t.true(await eventually(() => handshakeRefused(server, monitor)), 'the new list is loaded');
    t.is(await health(), 'refused');
  } finally {
    agent.destroy();
    await server.stop();
  }
});

test('a connection busy as a reloaded CRL is loaded (a scraper polling more often than the keep-alive time) is closed after its next answer: a certificate revoked meanwhile does not keep the health routes', async (t) => {
  const server = await startServerProcess({ MESHBOX_CRL_RELOAD_SECONDS: '0.5' }, { withCrl: true });
  const monitor = await server.createMailbox();
  const { port } = new URL(server.origin);
  const socket = tlsConnect({ host: '127.0.0.1', port: Number(port), servername: 'localhost', cert: monitor.certPem, key: monitor.keyPem, ca: server.caPem });
  let received = '';
  socket.on('data', (data: Buffer) => (received += data.toString('latin1')));
  const closed = once(socket, 'close');
  /** The head of the next whole answer (its body, of its Content-Length, read too). */
  const answer = async (): Promise<string> => {
    const whole = async () => {
      const end = received.indexOf('\r\n\r\n');
      return end >= 0 && received.length >= end + 4 + Number(/content-length: (\d+)/i.exec(received.slice(0, end))?.[1] ?? 0);
    };
    t.true(await waitFor(whole, 10_000, 20));
    const head = received.slice(0, received.indexOf('\r\n\r\n'));
    received = '';
    return head;
  };
  try {
    await once(socket, 'secureConnect');
    socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
    t.regex(await answer(), /^HTTP\/1\.1 200 [^]*Connection: keep-alive/i);
    // Busy as the list is loaded: a request under way.
    socket.write('GET /healthz HTTP/1.1\r\nHost: local');
    await run(process.execPath, [CLI, 'admin', 'cert', 'revoke', monitor.id], { env: { ...process.env, ...server.adminEnvironment } });
    t.true(await eventually(() => handshakeRefused(server, monitor)), 'the new list is loaded');
    socket.write('host\r\n\r\n');
    t.regex(await answer(), /^HTTP\/1\.1 200 [^]*Connection: close/i, 'answered, as asked before the list was loaded, and closed');
    await closed;
  } finally {
    socket.destroy();
    await server.stop();
  }
});

function handshakeRefused(server: ServerProcess, mailbox: TestMailbox): Promise<boolean> {
  return mailboxRequest(server, mailbox, { path: '/messageexchange/_ping' }).then(
    () => false,
    () => true,
  );
}

/** Polls until the condition holds, for at most ten seconds. */
const eventually = (condition: () => Promise<boolean>): Promise<boolean> => waitFor(condition, 10_000);

test('a CRL file holding one CRL per CA (a CA rollover) is loaded whole: the clients of both CAs connect, and a certificate either CRL revokes is refused', async (t) => {
  const server = await startTestServer({ worker: false });
  const https = await (async () => {
    const oldCa = server.ca;
    const newCa = createCertificateAuthority({ commonName: 'meshbox next CA' });
    const served = issueServerCertificate({ ca: oldCa, commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    const alice = await server.createMailbox();
    const bob = await server.createMailbox();
    const carol = await server.createMailbox();
    const bobRenewed = issueMailboxCertificate({ ca: newCa, mailboxId: bob.id });
    const carolRenewed = issueMailboxCertificate({ ca: newCa, mailboxId: carol.id });
    // The new CA's CRL second: Node would load only the first of a single string.
    const crl = createRevocationList({ ca: oldCa, revoked: [] }) + createRevocationList({ ca: newCa, revoked: [{ serialNumber: carolRenewed.serialNumber, revokedAt: new Date() }] });
    const listener = createMeshServer(createApp(server.services, pino({ level: 'silent' })), {
      cert: served.certPem,
      key: served.keyPem,
      ca: oldCa.certPem + newCa.certPem,
      crl,
    });
    listener.listen(0, '127.0.0.1');
    await once(listener, 'listening');
    const endpoint = { ...server, origin: `https://127.0.0.1:${(listener.address() as AddressInfo).port}` };
    const outcome = (mailbox: TestMailbox, certificate: { readonly certPem: string; readonly keyPem: string }) =>
      mailboxRequest(endpoint, mailbox, { path: `/messageexchange/${mailbox.id}/inbox`, clientCertificate: certificate }).then(
        (response) => response.status,
        () => 'refused in the handshake',
      );
    t.is(await outcome(alice, alice), 200, 'a client of the old CA');
    t.is(await outcome(bob, bobRenewed), 200, 'a client of the new CA');
    t.is(await outcome(carol, carolRenewed), 'refused in the handshake', 'revoked by the second CRL');
    return listener;
  })().finally(() => server.close());
  https.closeAllConnections();
  https.close();
});

/** A health-only server whose CRL file is reloaded every 50 ms, its log lines kept; close() when done. */
async function reloadingServer(ca: ReturnType<typeof createCertificateAuthority>, firstList: string, trusted = ca.certPem) {
  const served = issueServerCertificate({ ca, commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const dir = await mkdtemp(join(tmpdir(), 'meshbox-crl-'));
  const crlFile = join(dir, 'crl.pem');
  await writeFile(crlFile, firstList);
  const tls = { cert: served.certPem, key: served.keyPem, ca: trusted, crl: firstList };
  const loaded = checkRevocationList(firstList, tls.ca, new Date());
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  const listener = createMeshServer(createApp({} as never, pino({ level: 'silent' }), { healthOnly: true }), tls);
  const stop = reloadRevocationList(listener, tls, { file: crlFile, pem: firstList, dates: loaded }, { intervalMs: 50, logger });
  const close = async (): Promise<void> => {
    stop();
    listener.close();
    await rm(dir, { recursive: true, force: true });
  };
  return { tls, loaded, lines, write: (list: string) => writeFile(crlFile, list), close };
}

test('a CRL file without the list of a trusted CA (a CA rollover half done) is warned of at start and at each reload, naming the CA: its clients would be refused in the handshake', async (t) => {
  const oldCa = createCertificateAuthority({ commonName: 'meshbox current CA' });
  const newCa = createCertificateAuthority({ commonName: 'meshbox next CA' });
  const { lines, write, close } = await reloadingServer(oldCa, createRevocationList({ ca: oldCa, revoked: [] }), oldCa.certPem + newCa.certPem);
  try {
    const unlisted = () => lines.filter((line) => line.includes('holds no list of a trusted CA'));
    t.is(unlisted().length, 1);
    t.regex(unlisted()[0]!, /"cas":\["CN=meshbox next CA, O=meshbox"\]/);
    await write(createRevocationList({ ca: oldCa, revoked: [], issuedAt: new Date(Date.now() + 1000) }));
    t.true(await waitFor(async () => unlisted().length === 2, 10_000, 20), 'warned again at the reload');
    await write(createRevocationList({ ca: oldCa, revoked: [] }) + createRevocationList({ ca: newCa, revoked: [] }));
    t.true(await waitFor(async () => lines.filter((line) => line.includes('revocation list reloaded')).length === 2, 10_000, 20));
    t.is(unlisted().length, 2, 'both lists: nothing to warn of');
  } finally {
    await close();
  }
});

test('a reloaded CRL older than the one loaded that leaves out serials it revokes (a PKI folder put back from a backup) is refused, and the loaded one kept; a newer one may leave serials out', async (t) => {
  const ca = createCertificateAuthority({ commonName: 'meshbox CA' });
  const hourAgo = new Date(Date.now() - 3_600_000);
  const early = { serialNumber: '0A:1B:2C', revokedAt: hourAgo };
  const late = { serialNumber: '7f00ff', revokedAt: new Date() };
  const { tls, loaded, lines, write, close } = await reloadingServer(ca, createRevocationList({ ca, revoked: [early, late] }));
  t.deepEqual(
    loaded.lists.map(({ issuer, issuerFingerprint, revoked }) => ({ issuer, issuerFingerprint, serials: revoked.map(({ serialNumber }) => serialNumber) })),
    [{ issuer: 'CN=meshbox CA, O=meshbox', issuerFingerprint: new X509Certificate(ca.certPem).fingerprint256, serials: ['0a1b2c', '7f00ff'] }],
  );
  t.is(loaded.lists[0]!.revoked[0]!.revokedAt.getTime(), Math.floor(hourAgo.getTime() / 1000) * 1000);
  try {
    await write(createRevocationList({ ca, revoked: [early], issuedAt: hourAgo }));
    t.true(await waitFor(async () => lines.some((line) => line.includes('revocation list not loaded')), 10_000, 20));
    const refusal = lines.find((line) => line.includes('revocation list not loaded'))!;
    t.regex(refusal, /older than the list loaded .* leaves out 1 serial that one revokes \(7f00ff\)/);
    t.false(lines.some((line) => line.includes('revocation list reloaded')));
    // The same entries, older: nothing undone, so loaded (two admins' lists racing, a clock a second apart).
    await write(createRevocationList({ ca, revoked: [late, early], issuedAt: new Date(Date.now() - 60_000) }));
    t.true(await waitFor(async () => lines.filter((line) => line.includes('revocation list reloaded')).length === 1, 10_000, 20));
    await write(createRevocationList({ ca, revoked: [late], issuedAt: new Date(Date.now() + 2000) }));
    t.true(await waitFor(async () => lines.filter((line) => line.includes('revocation list reloaded')).length === 2, 10_000, 20), 'a newer list that drops a serial loads');
    // A CA rollover under the same name: the new CA's list, older than the old one's and revoking none of its serials, is another CA's.
    const sameName = createCertificateAuthority({ commonName: 'meshbox CA' });
    const both = createRevocationList({ ca, revoked: [late], issuedAt: new Date(Date.now() + 3000) }) + createRevocationList({ ca: sameName, revoked: [], issuedAt: hourAgo });
    tls.ca = ca.certPem + sameName.certPem;
    await write(both);
    t.true(await waitFor(async () => lines.filter((line) => line.includes('revocation list reloaded')).length === 3, 10_000, 20), lines.join(''));
  } finally {
    await close();
  }
});

test('a CRL refused for being dated ahead of this machine\'s clock (a CA host\'s clock running ahead) is loaded once its time has come, not refused for good', async (t) => {
  const ca = createCertificateAuthority({ commonName: 'meshbox CA' });
  const { lines, write, close } = await reloadingServer(ca, createRevocationList({ ca, revoked: [] }));
  try {
    // Its thisUpdate (issued less 5 minutes) 4 s past the 5 minutes of clock difference allowed:
    // long enough for a loaded machine to sign and write it, and a reload to refuse it, first.
    await write(createRevocationList({ ca, revoked: [{ serialNumber: '7f00ff', revokedAt: new Date() }], issuedAt: new Date(Date.now() + 10 * 60_000 + 4_000) }));
    t.true(await waitFor(async () => lines.some((line) => line.includes('in the future')), 10_000, 20), 'refused at first');
    t.regex(lines.find((line) => line.includes('in the future'))!, /it is tried again from \d{4}-/);
    t.true(await waitFor(async () => lines.some((line) => line.includes('revocation list reloaded')), 10_000, 20), 'loaded once its time came');
    t.is(lines.filter((line) => line.includes('in the future')).length, 1, 'said once, not at every reload meanwhile');
  } finally {
    await close();
  }
});

test('a connection accepted before a CRL reload but handshaken after it (under the old list) does not keep a certificate the new list revokes: it is closed after its next answer', async (t) => {
  const backing = await startTestServer({ worker: false });
  t.teardown(() => backing.close());
  const ca = createCertificateAuthority({ commonName: 'meshbox race CA' });
  const served = issueServerCertificate({ ca, commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const monitor = issueMailboxCertificate({ ca, mailboxId: 'MONITORING' });
  const dir = await temporaryDirectory(t, 'crl-race');
  const crlFile = join(dir, 'crl.pem');
  const firstList = createRevocationList({ ca, revoked: [] });
  await writeFile(crlFile, firstList);
  const tls = { cert: served.certPem, key: served.keyPem, ca: ca.certPem, crl: firstList };
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  const listener = createMeshServer(createApp(backing.services, pino({ level: 'silent' }), { healthOnly: true }), tls);
  const stop = reloadRevocationList(listener, tls, { file: crlFile, pem: firstList, dates: checkRevocationList(firstList, tls.ca, new Date()) }, { intervalMs: 50, logger });
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  t.teardown(() => {
    stop();
    listener.closeAllConnections();
    listener.close();
  });
  const { port } = listener.address() as AddressInfo;

  // A TCP connection the server has accepted (its TLS socket made, under the list of the moment), no ClientHello yet.
  const accepted = once(listener, 'connection');
  const tcp = netConnect({ host: '127.0.0.1', port });
  await once(tcp, 'connect');
  await accepted;

  // The certificate is revoked and the new list loaded.
  const revokedList = createRevocationList({ ca, revoked: [{ serialNumber: monitor.serialNumber, revokedAt: new Date() }] });
  await writeFile(crlFile, revokedList);
  t.true(await waitFor(async () => lines.some((line) => line.includes('revocation list reloaded')), 10_000, 20), 'the new list is loaded');
  // A new connection is refused in its handshake.
  const refused = await new Promise<boolean>((resolve) => {
    const fresh = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', cert: monitor.certPem, key: monitor.keyPem, ca: ca.certPem });
    fresh.on('error', () => resolve(true));
    fresh.on('data', () => resolve(false));
    fresh.on('secureConnect', () => fresh.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
    fresh.on('close', () => resolve(true));
  });
  t.true(refused, 'a connection begun after the reload is refused');

  // The connection accepted before the reload now shakes hands (as a client whose handshake was under way then would).
  const socket = tlsConnect({ socket: tcp, servername: 'localhost', cert: monitor.certPem, key: monitor.keyPem, ca: ca.certPem });
  socket.on('error', () => {});
  let received = '';
  socket.on('data', (data: Buffer) => (received += data.toString('latin1')));
  let closed = false;
  socket.on('close', () => (closed = true));
  const handshaken = await Promise.race([once(socket, 'secureConnect').then(() => true), once(socket, 'close').then(() => false)]);
  if (!handshaken) {
    t.pass('refused in the handshake');
    return;
  }
  socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor(async () => received.includes('\r\n\r\n') || closed, 5_000, 20);
  const head = received.slice(0, received.indexOf('\r\n\r\n'));
  t.regex(head, /^HTTP\/1\.1 200 /, 'answered under the list it shook hands with');
  // Its answer must close the connection, as for every connection handshaken under the old list.
  t.regex(head, /\r\nConnection: close/i, `a certificate revoked by the loaded list keeps a kept-alive connection: ${JSON.stringify(head)}`);
});
