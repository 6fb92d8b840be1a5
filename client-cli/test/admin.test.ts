import { execFile, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import test from 'ava';
import forge from 'node-forge';
import { pino } from 'pino';
import { runDueLifecycles } from '../../server/src/jobs/lifecycle-worker.ts';
import { AUDIT_SHARDS } from '../../server/src/store/audit-log.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import { ensureLocalServices } from '../../scripts/services/index.ts';
import { REPO_ROOT } from '../../shared/src/dev-paths.ts';
import { newMessageId } from '../../shared/src/protocol/index.ts';
import { createCertificateAuthority, createCertificateRequest, createRevocationList, describeCertificate, issueMailboxCertificate, verifyIssuedBy } from '../../shared/src/pki/index.ts';
import { startTestServer, TEST_SECRET_KEY, type TestServer } from '../../test/support/harness.ts';
import { startTestRedis } from '../../test/support/redis-server.ts';
import { mailboxRequest, rawRequest, sendMessage } from '../../test/support/http.ts';
import { publishRevocationList } from '../src/commands/admin/pki-files.ts';
import { fileTemporaryDirectory, temporaryDirectory } from '../../test/support/temporary-directory.ts';
import { type CliResult, MAIN, runSubprocess } from './support/cli-fixture.ts';

let server: TestServer;
const pkiDir = fileTemporaryDirectory(test, 'admin');
let adminEnv: Record<string, string>;

test.before(async () => {
  server = await startTestServer();
  const local = await ensureLocalServices();
  // The admin signs with the test server's CA, so what it issues is accepted there.
  await writeFile(join(pkiDir, 'ca.crt'), server.ca.certPem);
  await writeFile(join(pkiDir, 'ca.key'), server.ca.keyPem);
  adminEnv = {
    MESHBOX_REDIS_URL: local.redisUrl,
    MESHBOX_REDIS_PREFIX: server.redisPrefix,
    MESHBOX_S3_ENDPOINT: local.s3.endpoint,
    MESHBOX_PKI_DIR: pkiDir,
    MESHBOX_SECRET_KEY: TEST_SECRET_KEY,
  };
});

test.after.always(async () => {
  await server?.close();
});

const admin = (...args: string[]): Promise<CliResult> => runSubprocess(['admin', ...args], { env: adminEnv });
const adminWithStdin = (stdin: string, ...args: string[]): Promise<CliResult> => runSubprocess(['admin', ...args], { env: adminEnv, stdin });

/** `openssl crl` on `<dir>/crl.pem`, checking its signature against `<dir>/ca.crt`. */
function readCrl(dir: string, ...args: string[]): { verified: boolean; text: string } {
  const shown = spawnSync('openssl', ['crl', '-in', join(dir, 'crl.pem'), '-CAfile', join(dir, 'ca.crt'), '-noout', ...args], { encoding: 'utf8' });
  return { verified: shown.status === 0 && /verify OK/.test(shown.stderr + shown.stdout), text: shown.stdout };
}

function asMailbox(id: string, password: string, dir: string, ...args: string[]): Promise<CliResult> {
  return withCertificateOf(id, id, password, dir, ...args);
}

/** As mailbox `id`, with the certificate of mailbox `holder`. */
function withCertificateOf(holder: string, id: string, password: string, dir: string, ...args: string[]): Promise<CliResult> {
  return runSubprocess([
    '--url', server.origin,
    '--mailbox', id,
    '--password', password,
    '--shared-key', server.sharedKey,
    '--cert', join(dir, `${holder}.crt`),
    '--key', join(dir, `${holder}.key`),
    '--ca', join(pkiDir, 'ca.crt'),
    ...args,
  ]);
}

test('ca init creates a CA and will not replace it without --force', async (t) => {
  const dir = await temporaryDirectory(t, 'ca');
  const created = await admin('--pki-dir', dir, 'ca', 'init', '--name', 'Test Trust CA');
  t.is(created.code, 0, created.stderr);
  const certPem = await readFile(join(dir, 'ca.crt'), 'utf8');
  t.is(describeCertificate(certPem).subjectCommonName, 'Test Trust CA');
  t.true(verifyIssuedBy(certPem, certPem));
  t.regex(created.stdout, /revocation list \(empty\): .*crl\.pem/);
  const crl = readCrl(dir, '-text');
  t.true(crl.verified, 'a CRL signed by the new CA');
  t.regex(crl.text, /No Revoked Certificates/);

  const again = await admin('--pki-dir', dir, 'ca', 'init');
  t.is(again.code, 1);
  t.regex(again.stderr, /already exists.*--force/);
  t.is(await readFile(join(dir, 'ca.crt'), 'utf8'), certPem);

  const server = await admin('--pki-dir', dir, 'cert', 'server', '--dns', 'mesh.example.org');
  t.is(server.code, 0, server.stderr);
  t.regex(server.stdout, /^server certificate for DNS mesh\.example\.org \(serial [0-9a-f]+\)/);
  const serverPem = await readFile(join(dir, 'server.crt'), 'utf8');
  t.true(verifyIssuedBy(serverPem, certPem));
  t.is(describeCertificate(serverPem).subjectAltName, 'DNS:mesh.example.org', 'no localhost beside the name given');
  const serverAgain = await admin('--pki-dir', dir, 'cert', 'server', '--ip', '10.1.2.3');
  t.is(serverAgain.code, 1);
  t.regex(serverAgain.stderr, /server\.(crt|key) exists already and is left as it is: --force replaces it/);
  t.is(await readFile(join(dir, 'server.crt'), 'utf8'), serverPem);
  t.is((await admin('--pki-dir', dir, 'cert', 'server', '--ip', '10.1.2.3', '--force')).code, 0);
  t.is(describeCertificate(await readFile(join(dir, 'server.crt'), 'utf8')).subjectAltName, 'IP Address:10.1.2.3');
  t.regex((await admin('audit', '--tail', '500')).stdout, /admin\.cert\.server 10\.1\.2\.3 serial [0-9a-f]+ for IP 10\.1\.2\.3/);
  // A first install makes the server's certificate before any Redis is there: it is made all the same.
  const offline = await runSubprocess(['admin', '--pki-dir', dir, 'cert', 'server', '--dns', 'first.example.org', '--force'], {
    env: { ...adminEnv, MESHBOX_REDIS_URL: 'redis://127.0.0.1:1' },
  });
  t.is(offline.code, 0, offline.stderr);
  t.is(offline.stderr, 'warning: not recorded in the audit log: cannot reach Redis at redis://127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1\n');
  // A Redis that takes the connection and never answers: given up on, not waited for for ever.
  const silent = createNetServer(() => {});
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  try {
    const silentUrl = `redis://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const queues = await runSubprocess(['admin', 'queues'], { env: { ...adminEnv, MESHBOX_REDIS_URL: silentUrl } });
    t.is(queues.code, 1);
    t.regex(queues.stderr, new RegExp(`^meshbox: cannot reach Redis at ${silentUrl}: `));
  } finally {
    silent.close();
  }
  t.is(describeCertificate(await readFile(join(dir, 'server.crt'), 'utf8')).subjectAltName, 'DNS:first.example.org');

  // A new CA keeps the old one's files, whose key signs its CRL while its certificates are in use.
  const replaced = await admin('--pki-dir', dir, 'ca', 'init', '--force');
  t.is(replaced.code, 0, replaced.stderr);
  const kept = (await readdir(dir)).filter((name) => /^(ca|crl)-.+\.(crt|key|pem)$/.test(name)).sort();
  t.is(kept.length, 3, kept.join(' '));
  t.is(await readFile(join(dir, kept.find((name) => name.endsWith('.crt'))!), 'utf8'), certPem);
  t.not(await readFile(join(dir, 'ca.crt'), 'utf8'), certPem);

  // A key without its certificate (half a CA lost) is a CA there too: refused without --force, kept aside with it.
  const halfDir = await temporaryDirectory(t, 'ca');
  await writeFile(join(halfDir, 'ca.key'), 'a key whose certificate was lost');
  const half = await admin('--pki-dir', halfDir, 'ca', 'init');
  t.is(half.code, 1);
  t.regex(half.stderr, /already exists.*--force/);
  t.is((await admin('--pki-dir', halfDir, 'ca', 'init', '--force')).code, 0);
  const keptKey = (await readdir(halfDir)).find((name) => /^ca-.+\.key$/.test(name));
  t.is(await readFile(join(halfDir, keptKey!), 'utf8'), 'a key whose certificate was lost');
});

test('cert sign --usage server signs the names a request asks beyond --for only when --dns and --ip give them: a client trusts a server certificate for its names', async (t) => {
  const dir = await temporaryDirectory(t, 'pki');
  t.is((await admin('--pki-dir', dir, 'ca', 'init')).code, 0);
  const csr = join(dir, 'mesh.csr');
  await writeFile(csr, createCertificateRequest({ commonName: 'mesh.example.org' }).csrPem);
  const out = join(dir, 'mesh.crt');
  const wider = join(dir, 'wider.csr');
  await writeFile(wider, createCertificateRequest({ commonName: 'mesh.example.org', dnsNames: ['mesh.example.org', '*.nhs.uk'], ipAddresses: ['10.0.0.1'] }).csrPem);
  const unnamed = await admin('--pki-dir', dir, 'cert', 'sign', wider, '--for', 'mesh.example.org', '--usage', 'server', '--out', out);
  t.is(unnamed.code, 1);
  t.regex(unnamed.stderr, /the request also asks for \*\.nhs\.uk, 10\.0\.0\.1, which --for does not name/);
  t.false(existsSync(out));
  const named = await admin('--pki-dir', dir, 'cert', 'sign', wider, '--for', 'mesh.example.org', '--usage', 'server', '--dns', 'mesh.example.org', '*.nhs.uk', '--ip', '10.0.0.1', '--out', out);
  t.is(named.code, 0, named.stderr);
  t.is(describeCertificate(await readFile(out, 'utf8')).subjectAltName, 'DNS:mesh.example.org, DNS:*.nhs.uk, IP Address:10.0.0.1');
  const onlyItsName = join(dir, 'only.crt');
  t.is((await admin('--pki-dir', dir, 'cert', 'sign', csr, '--for', 'mesh.example.org', '--usage', 'server', '--out', onlyItsName)).code, 0, 'a request for its CN alone needs no flags');
  // Node writes an IPv6 address in full: it is still the --for name.
  const byAddress = join(dir, 'v6.csr');
  await writeFile(byAddress, createCertificateRequest({ commonName: '2001:db8::5', ipAddresses: ['2001:db8::5'] }).csrPem);
  const v6 = await admin('--pki-dir', dir, 'cert', 'sign', byAddress, '--for', '2001:db8::5', '--usage', 'server', '--out', join(dir, 'v6.crt'));
  t.is(v6.code, 0, v6.stderr);
  t.is(describeCertificate(await readFile(join(dir, 'v6.crt'), 'utf8')).subjectAltName, 'IP Address:2001:DB8:0:0:0:0:0:5');
});

test('cert server and cert sign refuse a malformed --ip or --dns as a usage error, before anything is signed or written', async (t) => {
  const dir = await temporaryDirectory(t, 'ca');
  t.is((await admin('--pki-dir', dir, 'ca', 'init')).code, 0);
  t.is((await admin('--pki-dir', dir, 'cert', 'server', '--dns', 'mesh.example.org')).code, 0);
  const working = await readFile(join(dir, 'server.crt'), 'utf8');
  const malformed = [
    ['--ip', '999.1.1.1'],
    ['--ip', 'not-an-ip'],
    ['--ip', 'fe80::1%eth0'],
    ['--dns', 'bad host_name!'],
    ['--dns', 'mesh..example.org'],
    ['--dns', 'mesh.*.example.org'],
    ['--dns', '10.0.0.5'],
  ];
  for (const [option, value] of malformed) {
    const refused = await admin('--pki-dir', dir, 'cert', 'server', '--dns', 'mesh.example.org', option!, value!, '--force');
    t.is(refused.code, 2, `a usage error: ${value}`);
    t.regex(refused.stderr, new RegExp(`option '${option} <[a-z.]+>' argument '.+' is invalid\\. Give an? (IPv4 address|host name)`));
  }
  t.is(await readFile(join(dir, 'server.crt'), 'utf8'), working, 'the working certificate stays');

  const csr = join(dir, 'mesh.csr');
  await writeFile(csr, createCertificateRequest({ commonName: 'mesh.example.org' }).csrPem);
  const out = join(dir, 'mesh.crt');
  for (const [option, value] of malformed) {
    const refused = await admin('--pki-dir', dir, 'cert', 'sign', csr, '--for', 'mesh.example.org', '--usage', 'server', option!, value!, '--out', out);
    t.is(refused.code, 2, `a usage error: ${value}`);
  }
  t.false(existsSync(out));

  const wildcard = await admin('--pki-dir', dir, 'cert', 'server', '--dns', '*.mesh.example.org', 'mesh.example.org', '--ip', '10.0.0.5', '2001:db8::5', '--force');
  t.is(wildcard.code, 0, wildcard.stderr);
  t.is(
    describeCertificate(await readFile(join(dir, 'server.crt'), 'utf8')).subjectAltName,
    'DNS:*.mesh.example.org, DNS:mesh.example.org, IP Address:10.0.0.5, IP Address:2001:DB8:0:0:0:0:0:5',
  );
});

test('mailbox create takes an ODS code of letters and digits (trimmed) and a name on one line of at most 200 characters, refusing others as usage errors before registering anything; a name longer than a certificate holds is cut there', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  for (const [flag, value] of [['--ods', 'Y2/6'], ['--ods', ''], ['--ods', 'A81001\u0007'], ['--name', 'Two\nlines'], ['--name', 'Trust \u202eRVR'], ['--name', 'x'.repeat(201)]]) {
    const refused = await admin('mailbox', 'create', 'ODS0001', '--password', 'p', flag!, value!, '--cert-out', out);
    t.is(refused.code, 2, `${flag} ${JSON.stringify(value)}`);
    t.regex(refused.stderr, flag === '--ods' ? /Give an ODS code: 1 to 12 letters and digits/ : /Give a name of at most 200 characters, on one line/);
  }
  t.is((await admin('mailbox', 'show', 'ODS0001')).code, 1, 'nothing registered');
  const name = 'Leeds Teaching Hospitals NHS Trust blood sciences '.repeat(3).trim();
  const created = await admin('mailbox', 'create', 'ODS0001', '--password', 'p', '--ods', ' y26 ', '--name', name, '--cert-out', out);
  t.is(created.code, 0, created.stderr);
  t.like(JSON.parse((await admin('mailbox', 'show', 'ODS0001')).stdout), { odsCode: 'Y26', name });
  t.is(new X509Certificate(await readFile(join(out, 'ODS0001.crt'))).subject, `CN=ODS0001\nO=${name.slice(0, 64)}`);
});

test('mailbox create registers the mailbox (a workflow given twice once, the ODS code upper case) and issues a certificate the server accepts; disable and enable take effect', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  const created = await admin('mailbox', 'create', 'x26ot001', '--password', 'pw-1', '--ods', 'x26', '--name', 'Example Trust', '--workflow', 'W1', 'W2', 'W1', '--cert-out', out);
  t.is(created.code, 0, created.stderr);
  t.true(existsSync(join(out, 'X26OT001.crt')));
  t.true(existsSync(join(out, 'X26OT001.key')));
  t.is(describeCertificate(await readFile(join(out, 'X26OT001.crt'), 'utf8')).subjectCommonName, 'X26OT001');

  t.is((await asMailbox('X26OT001', 'pw-1', out, 'handshake')).code, 0);

  const shown = await admin('mailbox', 'show', 'X26OT001');
  t.is(shown.code, 0);
  const mailbox = JSON.parse(shown.stdout);
  t.like(mailbox, { id: 'X26OT001', odsCode: 'X26', name: 'Example Trust', active: true, sendWorkflows: ['W1', 'W2'], receiveWorkflows: ['W1', 'W2'] });
  t.false('password' in mailbox);
  t.false(shown.stdout.includes('pw-1'));
  // Its certificate's serial, to revoke it by when a renewed one has taken its place.
  const serial = describeCertificate(await readFile(join(out, 'X26OT001.crt'), 'utf8')).serialNumber.replaceAll(':', '').toLowerCase();
  t.deepEqual(mailbox.certificates, [{ serial, notAfter: describeCertificate(await readFile(join(out, 'X26OT001.crt'), 'utf8')).notAfter.toISOString(), revoked: false }]);

  const listed = await admin('mailbox', 'list', '--json');
  t.true((JSON.parse(listed.stdout) as { id: string }[]).some((entry) => entry.id === 'X26OT001'));

  t.is((await admin('mailbox', 'disable', 'X26OT001')).code, 0);
  const refused = await asMailbox('X26OT001', 'pw-1', out, 'handshake');
  t.is(refused.code, 1);
  t.regex(refused.stderr, /HTTP 403/);
  t.is((await admin('mailbox', 'enable', 'X26OT001')).code, 0);
  t.is((await asMailbox('X26OT001', 'pw-1', out, 'handshake')).code, 0);
});

test("mailbox disable is MESH's deactivation: the messages waiting in its inbox go back to their senders as undeliverable, each with a report; one acknowledged stays so", async (t) => {
  const [lab, closing] = [await server.createMailbox(), await server.createMailbox()];
  const [collected, waiting] = [await sendMessage(server, lab, closing, 'collected'), await sendMessage(server, lab, closing, 'waiting', { 'mex-LocalID': 'ref-7' })];
  t.is((await mailboxRequest(server, closing, { method: 'PUT', path: `/messageexchange/${closing.id}/inbox/${collected}/status/acknowledged` })).status, 200);

  const disabled = await admin('mailbox', 'disable', closing.id);
  t.is(disabled.code, 0, disabled.stderr);
  t.is(disabled.stdout, `mailbox ${closing.id} disabled: 1 waiting message goes back to its sender as undeliverable at the lifecycle worker's next sweep\n`);
  const statusOf = async (messageId: string) =>
    (await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` })).json().status;
  for (let attempt = 0; attempt < 100 && (await statusOf(waiting)) !== 'undeliverable'; attempt++) await new Promise((resolve) => setTimeout(resolve, 100));
  t.is(await statusOf(waiting), 'undeliverable');
  t.is(await statusOf(collected), 'acknowledged');
  const [reportId, ...others] = (await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/inbox` })).json().messages;
  t.deepEqual(others, []);
  const report = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/inbox/${reportId}` });
  t.like(report.headers, {
    'mex-messagetype': 'REPORT',
    'mex-linkedmsgid': waiting,
    'mex-localid': 'ref-7',
    'mex-statuscode': '14',
    'mex-statusdescription': 'Message was not collected as the mailbox is deactivated',
  });
  t.regex((await admin('mailbox', 'disable', (await server.createMailbox()).id)).stdout, /: no messages were waiting\n$/);
});

test('mailbox commands refuse duplicates, unknown mailboxes and bad ids with a clear message', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  t.is((await admin('mailbox', 'create', 'DUP001', '--password', 'a', '--cert-out', out)).code, 0);
  const duplicate = await admin('mailbox', 'create', 'DUP001', '--password', 'b', '--cert-out', out);
  t.is(duplicate.code, 1);
  t.regex(duplicate.stderr, /DUP001 already exists/);

  const unknown = await admin('mailbox', 'show', 'NOSUCH1');
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /no mailbox NOSUCH1/);
  t.is((await admin('mailbox', 'disable', 'NOSUCH1')).code, 1);

  const bad = await admin('mailbox', 'create', 'bad/id', '--password', 'x', '--cert-out', out);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /invalid mailbox id/);
  const routeWord = await admin('mailbox', 'create', 'WorkflowSearch', '--password', 'x', '--cert-out', out);
  t.is(routeWord.code, 1);
  t.regex(routeWord.stderr, /WORKFLOWSEARCH is a word of the API's paths/);
});

test('an admin command without MESHBOX_REDIS_URL warns on stderr that it acts on the local development services (an admin machine or cron job missing the deployment\'s settings); with it, no warning', async (t) => {
  const { MESHBOX_REDIS_URL: _given, ...withoutUrl } = adminEnv;
  // The test server runs on the local development services, so the list is its mailboxes either way.
  const mailbox = await server.createMailbox();
  const local = await runSubprocess(['admin', 'mailbox', 'list'], { env: withoutUrl });
  t.is(local.code, 0, local.stderr);
  t.is(local.stderr, "warning: MESHBOX_REDIS_URL is not set: acting on the local development services (npm run setup's), not a deployment's Redis\n");
  t.true(local.stdout.includes(mailbox.id));
  const configured = await admin('mailbox', 'list');
  t.is(configured.stderr, '');
  t.true(configured.stdout.includes(mailbox.id));
});

test('an admin command warns of a MESHBOX_ variable a letter from one it reads, as the server does at start: a misspelt prefix would have it act on the default prefix', async (t) => {
  const { MESHBOX_REDIS_PREFIX: prefix, ...rest } = adminEnv;
  const listed = await runSubprocess(['admin', 'mailbox', 'list'], { env: { ...rest, MESHBOX_REDIS_PREFX: prefix! } });
  t.regex(listed.stderr, /^warning: MESHBOX_REDIS_PREFX is not a setting \(ignored\): MESHBOX_REDIS_PREFIX\?$/m);
  t.is((await admin('mailbox', 'list')).stderr, '', 'nothing said of the right one');
});

test("an admin command given a Redis database that Redis does not have refuses, as the server does, rather than act on database 0 (another deployment's, maybe)", async (t) => {
  const mailbox = await server.createMailbox();
  const listed = await runSubprocess(['admin', 'mailbox', 'list'], { env: { ...adminEnv, MESHBOX_REDIS_URL: `${adminEnv.MESHBOX_REDIS_URL}/99` } });
  t.is(listed.code, 1, listed.stdout);
  t.false(listed.stdout.includes(mailbox.id), "database 0's mailboxes listed");
  t.regex(listed.stderr, /^meshbox: Redis at redis:\/\/127\.0\.0\.1:\d+ has no database 99 \(MESHBOX_REDIS_URL\): ERR DB index is out of range\n$/);
});

test('mailbox list and backlog show a name with control characters escaped, never sent to the terminal, and on its own line: a line break or tab in it makes no line of its own', async (t) => {
  const name = 'Evil\u001b[31mRED\u001b[0m\u009b2J\u0007\n2026-12-01 09:00\t5d 0h\t40 waiting\tGP999';
  // Registered as an older meshbox, or another tool, could have: `mailbox create --name` refuses it.
  await server.createMailbox({ id: 'CTL001', name });
  const listed = await admin('mailbox', 'list');
  t.is(listed.code, 0, listed.stderr);
  t.regex(listed.stdout, /CTL001\tactive\t\tEvil\\u001b\[31mRED/);
  // Something waiting for it, so that backlog lists it.
  const lab = await server.createMailbox();
  await sendMessage(server, lab, { ...lab, id: 'CTL001' }, 'waiting');
  const backlog = await admin('backlog', '--json');
  t.true(backlog.stdout.includes('"CTL001"'), backlog.stdout);
  const lines = await admin('backlog');
  t.is(lines.code, 0, lines.stderr);
  t.false(/^2026-12-01 09:00/m.test(lines.stdout), lines.stdout);
  t.regex(lines.stdout, /\tEvil\\u001b\[31mRED.*\\n2026-12-01 09:00\\t5d 0h\\t40 waiting\\tGP999$/m);
  for (const output of [listed.stdout, backlog.stdout, lines.stdout]) t.false(/[\u001b\u0007\u009b]/.test(output), JSON.stringify(output));
});

test('admin workflow allow and deny change what a mailbox may send and receive', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  t.is((await admin('mailbox', 'create', 'WF001', '--password', 'p', '--workflow', 'PATH_RESULTS', '--cert-out', out)).code, 0);
  const allowed = await admin('workflow', 'allow', 'wf001', 'RAD_RESULTS', '--receive');
  t.is(allowed.code, 0, allowed.stderr);
  t.regex(allowed.stdout, /WF001 may receive RAD_RESULTS/);
  t.is(allowed.stderr, '', 'it had named workflows only: nothing to warn of');
  const denied = await admin('workflow', 'deny', 'WF001', 'PATH_RESULTS');
  t.is(denied.code, 0);
  const mailbox = JSON.parse((await admin('mailbox', 'show', 'WF001')).stdout);
  t.deepEqual(mailbox.sendWorkflows, []);
  t.deepEqual(mailbox.receiveWorkflows, ['RAD_RESULTS']);

  t.is((await admin('mailbox', 'create', 'WF002', '--password', 'p', '--cert-out', out)).code, 0);
  // Created without --workflow it may use any: allowing one narrows nothing, which it is told.
  const widened = await admin('workflow', 'allow', 'WF002', 'RAD_RESULTS', '--receive');
  t.is(widened.code, 0);
  t.regex(widened.stderr, /note: WF002 may still receive any workflow \('\*'\); .*meshbox admin workflow deny WF002 '\*' --receive/);
  const wildcard = await admin('workflow', 'deny', 'WF002', 'RAD_RESULTS', '--send');
  t.is(wildcard.code, 1);
  t.regex(wildcard.stderr, /deny '\*' first/);
  t.is((await admin('workflow', 'deny', 'NOSUCH9', 'X')).code, 1);

  // Both directions are checked before either changes: receiving allows any, so denying one
  // there is refused, and sending is left as it was.
  t.is((await admin('workflow', 'deny', 'WF002', '*', '--send')).code, 0);
  t.is((await admin('workflow', 'allow', 'WF002', 'WFA', '--send')).code, 0);
  const half = await admin('workflow', 'deny', 'WF002', 'WFA');
  t.is(half.code, 1);
  t.regex(half.stderr, /WF002 may receive any workflow \('\*'\): deny '\*' first/);
  t.is(half.stdout, '');
  t.deepEqual(JSON.parse((await admin('mailbox', 'show', 'WF002')).stdout).sendWorkflows, ['WFA'], 'sending unchanged');
  // Denying one it may not use changes nothing, and says so; nor is it audited (an empty or
  // multi-line id would write a misleading entry).
  for (const absent of ['NEVER_ALLOWED', '', 'X\n2026-12-01T02:00:00.000Z admin:alice admin.mailbox.enable W1']) {
    const nothing = await admin('workflow', 'deny', 'WF001', absent, '--send');
    t.is(nothing.code, 0, JSON.stringify(absent));
    t.regex(nothing.stdout, /^WF001 may not send .*anyway: nothing changed\n$/, 'on one line');
  }
  const denials = (await admin('audit', '--tail', '500')).stdout.split('\n').filter((line) => line.includes('admin.workflow.deny WF001 send'));
  t.deepEqual(denials.map((line) => line.replace(/^\S+ \S+ /, '')), ['admin.workflow.deny WF001 send PATH_RESULTS'], 'only the denial that changed something');
  // Allowing one it may use already changes nothing either, and says so, unaudited.
  const again = await admin('workflow', 'allow', 'WF001', 'RAD_RESULTS', '--receive');
  t.is(again.code, 0, again.stderr);
  t.is(again.stdout, 'WF001 may already receive RAD_RESULTS: nothing changed\n');
  const allowances = (await admin('audit', '--tail', '500')).stdout.split('\n').filter((line) => line.includes('admin.workflow.allow WF001 receive RAD_RESULTS'));
  t.is(allowances.length, 1, 'only the allowance that changed something');
  t.deepEqual(JSON.parse((await admin('mailbox', 'show', 'WF001')).stdout).receiveWorkflows, ['RAD_RESULTS']);

  // An en dash pasted from a document, a zero-width space: ids no sender types.
  // And '.' or '..', which a lookup URL takes for a step in its path: such a receiver is never found.
  for (const bad of ['', 'PATH RESULTS', 'PATH\tRESULTS', 'PATH/RESULTS', 'X'.repeat(301), 'PATH\u2013RESULTS', 'PATH_RESULTS\u200b', 'PATHÉ', '.', '..']) {
    const refused = await admin('workflow', 'allow', 'WF001', bad);
    t.is(refused.code, 1, JSON.stringify(bad));
    t.regex(refused.stderr, /invalid workflow id .*: 1 to 300 of ASCII's letters, digits and punctuation, without spaces or '\/', and not '\.' or '\.\.'/);
  }
  // Upper-cased as ASCII only: `ſ` is no S, and `ſf001` names no mailbox, not SF001's.
  t.is((await admin('mailbox', 'create', 'SF001', '--password', 'p', '--workflow', 'W1', '--cert-out', out)).code, 0);
  for (const action of ['allow', 'deny']) {
    const other = await admin('workflow', action, 'ſf001', 'W1');
    t.is(other.code, 1, other.stdout);
    t.regex(other.stderr, /invalid mailbox id "ſf001"/);
  }
  t.regex((await admin('cert', 'issue', 'ſf001', '--cert-out', out)).stderr, /invalid mailbox id "ſf001"/);
  t.regex((await admin('cert', 'revoke', 'ſf001')).stderr, /no mailbox "ſf001" has certificates on record, and "ſf001" is not a hexadecimal serial number/);
  t.deepEqual(JSON.parse((await admin('mailbox', 'show', 'SF001')).stdout).sendWorkflows, ['W1'], 'SF001 unchanged');
  const badCreate = await admin('mailbox', 'create', 'WF003', '--password', 'p', '--workflow', 'OK_ONE', 'NOT OK', '--cert-out', out);
  t.regex(badCreate.stderr, /invalid workflow id "NOT OK"/);
  t.regex((await admin('mailbox', 'show', 'WF003')).stderr, /no mailbox WF003/);
  t.deepEqual(JSON.parse((await admin('mailbox', 'show', 'WF001')).stdout).receiveWorkflows, ['RAD_RESULTS'], 'unchanged');
});

test('admin queues shows the lifecycle checks scheduled and due, and failing ones with their reasons (escaped, each on its line)', async (t) => {
  // A server without a worker: its schedule stays as the test leaves it.
  const idle = await startTestServer({ worker: false });
  try {
    const sender = await idle.createMailbox();
    const recipient = await idle.createMailbox();
    await sendMessage(idle, sender, recipient, 'queued');
    await idle.connections.schedule.start('BROKEN', new Date());
    // Its check runs while object storage fails, as it would in an S3 outage.
    const failingStorage = Object.assign(Object.create(idle.services.payloads), { deleteMessage: () => Promise.reject(new Error('S3 unreachable (test)\n  failing FAKE after 9 attempts\u009b2J')) });
    const services = { ...idle.services, payloads: failingStorage };
    t.is(await runDueLifecycles(services, idle.connections.schedule, pino({ level: 'silent' })), 1);

    const env = { ...adminEnv, MESHBOX_REDIS_PREFIX: idle.redisPrefix };
    const shown = await runSubprocess(['admin', 'queues', '--json'], { env });
    t.is(shown.code, 0, shown.stderr);
    const [report] = JSON.parse(shown.stdout);
    t.is(report.queue, 'message-lifecycle');
    t.like(report.counts, { scheduled: 2, failing: 1 }, 'the sent message waits for its next check; BROKEN is retried');
    t.true(report.counts.due <= 1);
    t.like(report.failing[0], { messageId: 'BROKEN', attempts: 1, reason: 'S3 unreachable (test)\n  failing FAKE after 9 attempts\u009b2J' }, 'the same JSON');
    t.false(/\u009b/.test(shown.stdout), 'no control code for the terminal');
    const text = await runSubprocess(['admin', 'queues'], { env });
    t.regex(text.stdout, /message-lifecycle: scheduled 2, due [01], failing 1/);
    t.regex(text.stdout, /failing BROKEN after 1 attempts.*S3 unreachable \(test\)\\n  failing FAKE after 9 attempts\\u009b2J$/m);
    t.notRegex(text.stdout, /^  failing FAKE/m);
    for (const bad of ['abc', '', '-1', '1e2', '99999999999999999999']) {
      const refused = await runSubprocess(['admin', 'queues', '--failed', bad], { env });
      t.is(refused.code, 2, `a usage error: ${bad}`);
      t.regex(refused.stderr, /option '--failed <n>' argument '.*' is invalid\. Give a whole number \(0 or more\)\./);
    }
    t.notRegex((await runSubprocess(['admin', 'queues', '--failed', '0'], { env })).stdout, /failing BROKEN after/);

    // Once the check succeeds, the failure is forgotten.
    await idle.connections.schedule.schedule('BROKEN', new Date());
    t.is(await runDueLifecycles(idle.services, idle.connections.schedule, pino({ level: 'silent' })), 1);
    t.like(await idle.connections.schedule.counts(new Date()), { scheduled: 1, failing: 0 });
  } finally {
    await idle.close();
  }
});

test('admin backlog lists the mailboxes with messages waiting, the longest-waiting first; --older-than picks those not collecting', async (t) => {
  const own = await startTestServer({ worker: false });
  try {
    const lab = await own.createMailbox({ id: 'BKLAB01', name: 'Pathology lab' });
    const [quiet, busy, idle] = [await own.createMailbox({ id: 'BKGP001', name: 'Quiet Surgery' }), await own.createMailbox({ id: 'BKGP002' }), await own.createMailbox({ id: 'BKGP003' })];
    const first = await sendMessage(own, lab, quiet, 'result 1');
    await sendMessage(own, lab, quiet, 'result 2');
    const recent = await sendMessage(own, lab, busy, 'result 3');
    await own.services.mailboxes.setActive('BKGP001', false);
    // The quiet surgery's first result has waited three hours (its acceptance moved back, as time would).
    const threeHoursAgo = Date.now() - 3 * 3_600_000;
    await own.redis.hset(`${own.redisPrefix}message:{${first}}`, 'acceptedAt', String(threeHoursAgo));
    t.is(idle.id, 'BKGP003');

    // BKGP002's system is up: it made its handshake (MESH clients do at start and daily).
    t.is((await mailboxRequest(own, busy, { method: 'POST', path: `/messageexchange/${busy.id}`, headers: { 'mex-ClientVersion': 'ApiDocs==0.0.1', 'mex-OSName': 'Linux' } })).status, 200);

    const env = { ...adminEnv, MESHBOX_REDIS_PREFIX: own.redisPrefix };
    const listed = await runSubprocess(['admin', 'backlog', '--json'], { env });
    t.is(listed.code, 0, listed.stderr);
    const entries = JSON.parse(listed.stdout) as { mailbox: string; waitingSince: string }[];
    t.deepEqual(entries.map((entry) => entry.mailbox), ['BKGP001', 'BKGP002'], 'the longest-waiting first; an empty inbox is not listed');
    t.like(entries[0], { mailbox: 'BKGP001', name: 'Quiet Surgery', active: false, waiting: 2, oldestMessageId: first, waitingSince: new Date(threeHoursAgo).toISOString(), lastHandshakeAt: null });
    t.like(entries[1], { mailbox: 'BKGP002', active: true, waiting: 1, oldestMessageId: recent });
    const handshakeAt = Date.parse((entries[1] as unknown as { lastHandshakeAt: string }).lastHandshakeAt);
    t.true(Math.abs(Date.now() - handshakeAt) < 60_000, 'its handshake, just now');
    const shown = JSON.parse((await runSubprocess(['admin', 'mailbox', 'show', 'BKGP002'], { env })).stdout) as { lastHandshake: unknown };
    t.deepEqual(shown.lastHandshake, { at: new Date(handshakeAt).toISOString(), client: 'ApiDocs==0.0.1 Linux' });
    t.regex((await runSubprocess(['admin', 'backlog'], { env })).stdout, /\t1 waiting\tBKGP002\thandshake \d+m ago\t/);

    const overdue = await runSubprocess(['admin', 'backlog', '--older-than', '2'], { env });
    t.is(overdue.code, 0, overdue.stderr);
    // The age as of the command's run: minutes past the three hours on a loaded machine.
    t.regex(overdue.stdout, new RegExp(`^${new Date(threeHoursAgo).toISOString().slice(0, 16).replace('T', ' ')}\\t3h \\d+m\\t2 waiting\\tBKGP001\\tno handshake\\tdisabled\\tQuiet Surgery\\n$`));
    t.is((await runSubprocess(['admin', 'backlog', '--older-than', '4'], { env })).stdout, '', 'none has waited longer than 4 hours');
    const refused = await runSubprocess(['admin', 'backlog', '--older-than', '2h'], { env });
    t.is(refused.code, 2);
    t.regex(refused.stderr, /option '--older-than <hours>' argument '2h' is invalid\. Give a whole number \(0 or more\)\./);
  } finally {
    await own.close();
  }
});

// Run as root (as CI runs), setpriv can make the command a user with no passwd entry, where
// that user can read the checkout (not one under root's own home).
const NAMELESS_USER = ['--reuid=4242', '--regid=4242', '--clear-groups'];
const namelessCanRun =
  process.getuid?.() === 0 && spawnSync('setpriv', [...NAMELESS_USER, process.execPath, '-e', `require('node:fs').accessSync(${JSON.stringify(MAIN)})`]).status === 0;
const asUidWithoutName = namelessCanRun ? test : test.skip;

asUidWithoutName('an admin command run as a user with no name (a container run as an arbitrary uid) works, and is audited as that uid', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  t.is((await admin('mailbox', 'create', 'UID001', '--password', 'p', '--cert-out', out)).code, 0);
  const run = spawnSync('setpriv', [...NAMELESS_USER, process.execPath, MAIN, 'admin', 'workflow', 'allow', 'UID001', 'UID_WORKFLOW', '--send'], {
    env: { PATH: process.env.PATH, ...adminEnv },
    encoding: 'utf8',
  });
  t.is(run.status, 0, run.stderr);
  const shown = await admin('audit', '--tail', '500', '--json');
  const entries = shown.stdout.trim().split('\n').map((line) => JSON.parse(line)).filter((entry) => entry.subject === 'UID001');
  t.like(entries.at(-1), { action: 'admin.workflow.allow', actor: 'admin:uid 4242' });
});

test('admin actions are recorded in the audit log, which admin audit shows', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  t.is((await admin('mailbox', 'create', 'AUD001', '--password', 'p', '--cert-out', out)).code, 0);
  t.is((await admin('mailbox', 'disable', 'AUD001')).code, 0);
  const shown = await admin('audit', '--tail', '500', '--json');
  t.is(shown.code, 0, shown.stderr);
  const entries = shown.stdout.trim().split('\n').map((line) => JSON.parse(line)).filter((entry) => entry.subject === 'AUD001');
  t.deepEqual(entries.map((entry) => entry.action), ['admin.mailbox.create', 'admin.mailbox.disable']);
  t.regex(entries[0].actor, /^admin:/);
  t.regex(entries[0].detail, /^ODS code \(none\); name ""; workflows \*; certificate serial [0-9a-f]+$/, 'what decides its routing and permissions');
  t.is((await admin('mailbox', 'create', 'AUD002', '--password', 'p', '--ods', 'x26', '--name', 'Audit Trust', '--workflow', 'PATH_RESULTS', 'RAD', 'PATH_RESULTS', '--cert-out', out)).code, 0);
  const created = (await admin('audit', '--tail', '500', '--json')).stdout.trim().split('\n').map((line) => JSON.parse(line)).find((entry) => entry.subject === 'AUD002');
  t.regex(created?.detail, /^ODS code X26; name "Audit Trust"; workflows PATH_RESULTS RAD; certificate serial [0-9a-f]+$/);
  const text = await admin('audit', '--tail', '500');
  t.regex(text.stdout, /admin\.mailbox\.disable AUD001/);
  t.is((await admin('audit', '--tail', 'lots')).code, 2, 'a usage error');
  // An entry is one line, whatever its fields hold: a line break in one cannot pass for another entry.
  await server.services.audit.record({ action: 'odd', actor: 'test', subject: 'AUD001', detail: 'one\n2026-12-01T02:00:00.000Z admin:alice admin.mailbox.enable AUD001' });
  const odd = (await admin('audit', '--tail', '500')).stdout.split('\n').filter((line) => line.includes(' test odd AUD001 '));
  t.deepEqual(odd.map((line) => line.replace(/^\S+ /, '')), ['test odd AUD001 one\\n2026-12-01T02:00:00.000Z admin:alice admin.mailbox.enable AUD001']);
});

test('CSR flow: the mailbox makes its own key and request, the admin signs it, and the certificate connects; the key never leaves', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  t.is((await admin('mailbox', 'create', 'CSR001', '--password', 'pw', '--cert-out', out)).code, 0);
  const own = await temporaryDirectory(t, 'own');
  const requested = await runSubprocess(['cert', 'request', '--for', 'csr001', '--out', own]);
  t.is(requested.code, 0, requested.stderr);
  t.true(existsSync(join(own, 'CSR001.key')));
  // Asked again there (a renewal), it would replace the key the current certificate is used with.
  const key = await readFile(join(own, 'CSR001.key'), 'utf8');
  const again = await runSubprocess(['cert', 'request', '--for', 'csr001', '--out', own]);
  t.is(again.code, 1);
  t.regex(again.stderr, /CSR001\.key exists already and is left as it is: write the new key and request to another folder \(--out\)/);
  t.is(await readFile(join(own, 'CSR001.key'), 'utf8'), key);

  // The request's file name proves nothing: the admin says whose it must be.
  const misnamed = await admin('cert', 'sign', join(own, 'CSR001.csr'), '--out', join(own, 'OTHER.crt'), '--for', 'AUD001');
  t.is(misnamed.code, 1);
  t.regex(misnamed.stderr, /the request is for "CSR001", not AUD001: nothing was signed/);
  t.false(existsSync(join(own, 'OTHER.crt')));
  const signed = await admin('cert', 'sign', join(own, 'CSR001.csr'), '--out', join(own, 'CSR001.crt'), '--for', 'csr001');
  t.is(signed.code, 0, signed.stderr);
  t.regex(signed.stdout, /signed client certificate for CSR001/);
  t.is((await asMailbox('CSR001', 'pw', own, 'handshake')).code, 0);

  const unknown = await runSubprocess(['cert', 'request', '--for', 'NOTREG1', '--out', own]);
  t.is(unknown.code, 0);
  const refused = await admin('cert', 'sign', join(own, 'NOTREG1.csr'), '--out', join(own, 'NOTREG1.crt'), '--for', 'NOTREG1');
  t.is(refused.code, 1);
  t.regex(refused.stderr, /not a registered mailbox/);

  // A monitoring system's certificate: no mailbox, so health and metrics only.
  const unknownUsage = await admin('cert', 'sign', join(own, 'NOTREG1.csr'), '--out', join(own, 'NOTREG1.crt'), '--for', 'NOTREG1', '--usage', 'monitor');
  t.is(unknownUsage.code, 2);
  t.regex(unknownUsage.stderr, /argument 'monitor' is invalid\. Allowed choices are client, monitoring, server\./);
  const monitoring = await admin('cert', 'sign', join(own, 'NOTREG1.csr'), '--out', join(own, 'NOTREG1.crt'), '--for', 'NOTREG1', '--usage', 'monitoring');
  t.is(monitoring.code, 0, monitoring.stderr);
  const clientCertificate = { certPem: await readFile(join(own, 'NOTREG1.crt'), 'utf8'), keyPem: await readFile(join(own, 'NOTREG1.key'), 'utf8') };
  t.is((await rawRequest(server, { path: '/readyz', clientCertificate })).status, 200);
  t.is((await rawRequest(server, { path: '/metrics', clientCertificate })).status, 200);
  t.is((await rawRequest(server, { path: '/messageexchange/NOTREG1/inbox', clientCertificate })).status, 403);
  const named = await admin('mailbox', 'create', 'NOTREG1', '--password', 'pw', '--cert-out', out);
  t.is(named.code, 1, 'a mailbox of its name would make the monitoring certificate its own');
  t.regex(named.stderr, /certificates named NOTREG1 are on record though no such mailbox is/);
  // By its serial, as by its name: the records know whose it is.
  const withdrawn = await admin('cert', 'revoke', describeCertificate(await readFile(join(own, 'NOTREG1.crt'), 'utf8')).serialNumber);
  t.is(withdrawn.code, 0, withdrawn.stderr);
  t.regex(withdrawn.stdout, /^revoked: serial [0-9a-f]+/m);
  t.regex((await admin('audit', '--tail', '50')).stdout, /admin\.cert\.revoke NOTREG1/);
  const asMailboxToo = await admin('cert', 'sign', join(own, 'CSR001.csr'), '--out', join(own, 'other.crt'), '--for', 'CSR001', '--usage', 'monitoring');
  t.is(asMailboxToo.code, 1);
  t.regex(asMailboxToo.stderr, /a mailbox: a monitoring certificate names none/);
});

test.serial('cert issue re-issues a certificate; cert revoke refuses every certificate of the mailbox', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  t.is((await admin('mailbox', 'create', 'REV001', '--password', 'pw', '--cert-out', out)).code, 0);
  const reissueDir = await temporaryDirectory(t, 'reissue');
  const overOld = await admin('cert', 'issue', 'rev001', '--cert-out', out);
  t.is(overOld.code, 1);
  t.regex(overOld.stderr, /REV001\.(crt|key) exists already and is left as it is: give another --cert-out/);
  const reissued = await admin('cert', 'issue', 'rev001', '--cert-out', reissueDir);
  t.is(reissued.code, 0, reissued.stderr);
  t.is((await asMailbox('REV001', 'pw', reissueDir, 'handshake')).code, 0);

  const revoked = await admin('cert', 'revoke', 'REV001');
  t.is(revoked.code, 0, revoked.stderr);
  t.is(revoked.stdout.match(/^revoked: serial/gm)?.length, 2, 'both certificates of the mailbox');
  t.true(existsSync(join(pkiDir, 'crl.pem')));
  for (const dir of [out, reissueDir]) {
    const refused = await asMailbox('REV001', 'pw', dir, 'handshake');
    t.is(refused.code, 1);
    t.regex(refused.stderr, /HTTP 403/);
  }
  t.regex((await admin('cert', 'revoke', 'REV001')).stdout, /already revoked/);

  // An old CRL, near its end, is re-issued without revoking anything; it is replaced whole (a rename), never rewritten in place.
  const ca = { certPem: await readFile(join(pkiDir, 'ca.crt'), 'utf8'), keyPem: await readFile(join(pkiDir, 'ca.key'), 'utf8') };
  await writeFile(join(pkiDir, 'crl.pem'), createRevocationList({ ca, revoked: [], issuedAt: new Date(Date.now() - 29 * 86_400_000) }));
  const before = await stat(join(pkiDir, 'crl.pem'));
  const crlReissued = await admin('cert', 'crl');
  t.is(crlReissued.code, 0, crlReissued.stderr);
  t.regex(crlReissued.stdout, /revocation list written: .*crl\.pem/);
  t.not((await stat(join(pkiDir, 'crl.pem'))).ino, before.ino);
  t.false((await readdir(pkiDir)).some((name) => name.endsWith('.part')));
  const crl = readCrl(pkiDir, '-text');
  t.true(crl.verified);
  const nextUpdate = new Date(/Next Update: (.+)/.exec(crl.text)![1]!);
  t.true(nextUpdate.getTime() > Date.now() + 29 * 86_400_000, `next update ${nextUpdate.toISOString()}`);
  for (const serial of revoked.stdout.match(/(?<=^revoked: serial )[0-9a-f]+/gm)!) t.true(crl.text.includes(`Serial Number: ${serial.toUpperCase()}`));
  const bad = await admin('cert', 'revoke', 'not-a-serial!');
  t.is(bad.code, 1);
  t.regex(bad.stderr, /not a hexadecimal serial number/);
});

test('cert list shows the certificates on record, soonest expiry first; --expiring-within picks those due for renewal; --days sets a lifetime', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  t.is((await admin('mailbox', 'create', 'EXP001', '--password', 'pw', '--cert-out', out)).code, 0);
  t.is((await admin('mailbox', 'create', 'EXP002', '--password', 'pw', '--cert-out', out, '--days', '10')).code, 0);
  const soon = describeCertificate(await readFile(join(out, 'EXP002.crt'), 'utf8'));
  const later = describeCertificate(await readFile(join(out, 'EXP001.crt'), 'utf8'));
  t.true(Math.abs(soon.notAfter.getTime() - Date.now() - 10 * 86_400_000) < 60_000, 'valid for the 10 days asked');
  t.is(Math.round((later.notAfter.getTime() - Date.now()) / 86_400_000), 825, 'the default lifetime');
  const renewed = await temporaryDirectory(t, 'certs');
  t.is((await admin('cert', 'issue', 'EXP002', '--cert-out', renewed, '--days', '400')).code, 0);
  const renewal = describeCertificate(await readFile(join(renewed, 'EXP002.crt'), 'utf8'));

  // Other tests of this file add certificates of their own: only these mailboxes' lines count.
  const ours = (stdout: string) => stdout.split('\n').filter((line) => /\tEXP00[12]\t/.test(line));
  const listed = await admin('cert', 'list');
  t.is(listed.code, 0, listed.stderr);
  t.deepEqual(ours(listed.stdout), [
    `${soon.notAfter.toISOString().slice(0, 10)}\t10 days\tEXP002\t${soon.serialNumber}`,
    `${renewal.notAfter.toISOString().slice(0, 10)}\t400 days\tEXP002\t${renewal.serialNumber}`,
    `${later.notAfter.toISOString().slice(0, 10)}\t825 days\tEXP001\t${later.serialNumber}`,
  ]);
  t.deepEqual(ours((await admin('cert', 'list', '--expiring-within', '30')).stdout), [`${soon.notAfter.toISOString().slice(0, 10)}\t10 days\tEXP002\t${soon.serialNumber}`]);
  t.deepEqual(ours((await admin('cert', 'list', '--expiring-within', '10')).stdout), [`${soon.notAfter.toISOString().slice(0, 10)}\t10 days\tEXP002\t${soon.serialNumber}`], 'issued for 10 days: it expires within 10');
  t.deepEqual(ours((await admin('cert', 'list', '--expiring-within', '9')).stdout), [], 'but not within 9');

  // Once the renewal is in use, the old one is revoked: it leaves the list, unless asked for.
  t.is((await admin('cert', 'revoke', soon.serialNumber)).code, 0);
  t.deepEqual(ours((await admin('cert', 'list', '--expiring-within', '30')).stdout), []);
  const all = JSON.parse((await admin('cert', 'list', '--revoked', '--json')).stdout) as { serial: string; holder: string; notAfter: string; daysLeft: number; revoked: boolean }[];
  t.deepEqual(
    all.filter((entry) => entry.holder === 'EXP002'),
    [
      { serial: soon.serialNumber, holder: 'EXP002', notAfter: soon.notAfter.toISOString(), daysLeft: 10, revoked: true },
      { serial: renewal.serialNumber, holder: 'EXP002', notAfter: renewal.notAfter.toISOString(), daysLeft: 400, revoked: false },
    ],
  );
  const shown = JSON.parse((await admin('mailbox', 'show', 'EXP002')).stdout) as { certificates: { serial: string; notAfter: string; revoked: boolean }[] };
  t.deepEqual(
    shown.certificates.sort((a, b) => a.notAfter.localeCompare(b.notAfter)),
    [
      { serial: soon.serialNumber, notAfter: soon.notAfter.toISOString(), revoked: true },
      { serial: renewal.serialNumber, notAfter: renewal.notAfter.toISOString(), revoked: false },
    ],
  );
  const refused = await admin('cert', 'list', '--expiring-within', 'soon');
  t.is(refused.code, 2);
  t.regex(refused.stderr, /option '--expiring-within <days>' argument 'soon' is invalid\. Give a whole number \(0 or more\)\./);
  const noDays = await admin('mailbox', 'create', 'EXP003', '--password', 'pw', '--cert-out', out, '--days', '0');
  t.is(noDays.code, 2);
  t.regex(noDays.stderr, /option '--days <n>' argument '0' is invalid\. Give a positive whole number\./);
});

test('cert list --expiring-within keeps the certificates with no expiry on record (recorded before dates, or holders, were kept): their end is unknown, not far', async (t) => {
  const keys = redisKeys(server.redisPrefix);
  const out = await temporaryDirectory(t, 'certs');
  t.is((await admin('mailbox', 'create', 'OLD001', '--password', 'pw', '--cert-out', out)).code, 0);
  const { serialNumber } = describeCertificate(await readFile(join(out, 'OLD001.crt'), 'utf8'));
  // As an upgrade finds it: the certificate recorded with its holder but no expiry date ...
  await server.redis.hdel(keys.certificateExpiry, serialNumber);
  // ... and an older one recorded before holders were kept: in the mailbox's set only.
  const older = 'ab'.repeat(16);
  await server.redis.sadd(keys.mailboxCertificates('OLD001'), older);
  const ours = (stdout: string) => stdout.split('\n').filter((line) => line.includes('\tOLD001\t')).sort();
  const expected = [`unknown\t-\tOLD001\t${older}`, `unknown\t-\tOLD001\t${serialNumber}`].sort();
  t.deepEqual(ours((await admin('cert', 'list')).stdout), expected, 'every certificate on record is listed');
  t.deepEqual(ours((await admin('cert', 'list', '--expiring-within', '30')).stdout), expected, 'an unknown end may be within the 30 days');
});

test('cert list --expiring-within leaves out an expired certificate that a renewal has replaced; one with none stays', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  t.is((await admin('mailbox', 'create', 'REN001', '--password', 'pw', '--cert-out', out)).code, 0);
  t.is((await admin('mailbox', 'create', 'REN002', '--password', 'pw', '--cert-out', out)).code, 0);
  const current = describeCertificate(await readFile(join(out, 'REN001.crt'), 'utf8'));
  // Each one's previous certificate, expired long ago and never revoked (docs: "the old one keeps working until it expires").
  const expired = (id: string) => issueMailboxCertificate({ ca: server.ca, mailboxId: id, validityDays: 1e-9 }).certPem;
  const old1 = expired('REN001');
  const old2 = expired('REN002');
  await server.services.certificates.recordIssued('REN001', old1);
  await server.services.certificates.recordIssued('REN002', old2);
  // REN002's current one revoked, nothing in its place: its system is stopped.
  t.is((await admin('cert', 'revoke', describeCertificate(await readFile(join(out, 'REN002.crt'), 'utf8')).serialNumber)).code, 0);
  const due = (await admin('cert', 'list', '--expiring-within', '30')).stdout.split('\n').filter((line) => /\tREN00[12]\t/.test(line));
  t.deepEqual(due, [`${describeCertificate(old2).notAfter.toISOString().slice(0, 10)}\texpired\tREN002\t${describeCertificate(old2).serialNumber}`]);
  t.true((await admin('cert', 'list')).stdout.includes(`\tREN001\t${describeCertificate(old1).serialNumber}`), 'the full list still has it');
  t.true(current.notAfter > new Date());
});

test("a certificate never outlives the CA that signs it (--days past the CA's end, or beyond what a date can hold, does not leave a mailbox without one)", async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  const caEnd = describeCertificate(server.ca.certPem).notAfter;
  const long = await admin('mailbox', 'create', 'LONG01', '--password', 'pw', '--cert-out', out, '--days', '5000');
  t.is(long.code, 0, long.stderr);
  t.true(describeCertificate(await readFile(join(out, 'LONG01.crt'), 'utf8')).notAfter <= caEnd, 'ends with the CA at the latest');
  const huge = await admin('mailbox', 'create', 'LONG02', '--password', 'pw', '--cert-out', out, '--days', '3000000');
  t.is(huge.code, 0, huge.stderr);
  t.is(describeCertificate(await readFile(join(out, 'LONG02.crt'), 'utf8')).notAfter.getTime(), caEnd.getTime());
  // Cut short, and told so; within the CA's life, nothing is said.
  const cutShort = `warning: the certificate ends on ${caEnd.toISOString().slice(0, 10)}, when the CA's own certificate does: sooner than the 3000000 days asked for`;
  t.true(huge.stderr.includes(cutShort), huge.stderr);
  const renewed = await admin('cert', 'issue', 'LONG02', '--cert-out', await temporaryDirectory(t, 'certs'), '--days', '3000000');
  t.true(renewed.stderr.includes(cutShort), renewed.stderr);
  const within = await admin('cert', 'issue', 'LONG02', '--cert-out', await temporaryDirectory(t, 'certs'), '--days', '30');
  t.is(within.code, 0, within.stderr);
  t.false(within.stderr.includes('warning'), within.stderr);
});

test("admin commands refuse a secret key other than the directory's before changing anything, and say where it came from", async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  t.is((await admin('mailbox', 'create', 'KEY001', '--password', 'pw', '--cert-out', out)).code, 0);
  const wrongKeyFile = join(out, 'wrong-secret-key');
  await writeFile(wrongKeyFile, 'not the server key\n');
  const { MESHBOX_SECRET_KEY: _right, ...withoutKey } = adminEnv;
  const wrongKeys = [
    { env: { ...adminEnv, MESHBOX_SECRET_KEY: 'not-the-servers-key' }, source: /\(from MESHBOX_SECRET_KEY\)/ },
    { env: { ...withoutKey, MESHBOX_SECRET_KEY_FILE: wrongKeyFile }, source: new RegExp(`read from MESHBOX_SECRET_KEY_FILE, ${wrongKeyFile}`) },
  ];
  const tryAll = async (): Promise<void> => {
    for (const { env, source } of wrongKeys) {
      const refused = await runSubprocess(['admin', 'mailbox', 'create', 'KEY002', '--password', 'pw', '--cert-out', out], { env });
      t.is(refused.code, 1);
      t.regex(refused.stderr, source);
      t.regex(refused.stderr, /is not the one the mailbox passwords in this Redis .* are encrypted under; nothing was changed/);
    }
    t.false(existsSync(join(out, 'KEY002.crt')));
    t.regex((await admin('mailbox', 'show', 'KEY002')).stderr, /no mailbox KEY002/);
  };
  await tryAll();
  // A directory made before check values were kept: its stored passwords tell the key.
  const checkKey = redisKeys(server.redisPrefix).secretKeyCheck;
  await server.redis.del(checkKey);
  await tryAll();
  const listed = await admin('mailbox', 'list');
  t.is(listed.code, 0, listed.stderr);
  t.regex(listed.stdout, /KEY001/);
  t.truthy(await server.redis.get(checkKey), 'the right key left its check value');
});

test('cert revoke refuses a serial not on record (a mistyped mailbox id), unless told --unrecorded; a serial on record is revoked for its mailbox', async (t) => {
  const typo = await admin('cert', 'revoke', 'FACADE02');
  t.is(typo.code, 1);
  t.regex(typo.stderr, /no mailbox FACADE02 has certificates on record, and no certificate with serial facade02 is on record either; nothing was revoked/);
  t.false(await server.services.certificates.isRevoked('FACADE02'));

  const forced = await admin('cert', 'revoke', 'FACADE03', '--unrecorded');
  t.is(forced.code, 0, forced.stderr);
  t.true(await server.services.certificates.isRevoked('FACADE03'));

  const out = await temporaryDirectory(t, 'certs');
  t.is((await admin('mailbox', 'create', 'BYSER01', '--password', 'pw', '--cert-out', out)).code, 0);
  const { serialNumber } = describeCertificate(await readFile(join(out, 'BYSER01.crt'), 'utf8'));
  const bySerial = await admin('cert', 'revoke', serialNumber.toUpperCase());
  t.is(bySerial.code, 0, bySerial.stderr);
  const audit = (await admin('audit', '--tail', '500', '--json')).stdout.trim().split('\n').map((line) => JSON.parse(line));
  t.true(audit.some((entry) => entry.action === 'admin.cert.revoke' && entry.subject === 'BYSER01' && entry.detail === `serial ${serialNumber}`));

  // As `npm run setup` used to leave its demo mailboxes: registered, with a certificate not on record.
  await server.services.mailboxes.create({ id: 'NOREC01', password: 'pw' });
  const unrecorded = await admin('cert', 'revoke', 'norec01');
  t.is(unrecorded.code, 1);
  t.regex(unrecorded.stderr, /mailbox NOREC01 has no certificate on record: give its certificate's serial .* with --unrecorded/);
});

test('mailbox password gives a new password, from a file, stdin or generated; create takes one from a file; empty ones are refused', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  const passwordFile = join(out, 'password');
  await writeFile(passwordFile, 'from-a-file\n');
  t.is((await admin('mailbox', 'create', 'PWD001', '--password-file', passwordFile, '--cert-out', out)).code, 0);
  t.is((await asMailbox('PWD001', 'from-a-file', out, 'handshake')).code, 0);

  const generated = await admin('mailbox', 'password', 'pwd001');
  t.is(generated.code, 0, generated.stderr);
  const password = /mailbox PWD001 has a new password; password ([0-9a-f]{32})$/m.exec(generated.stdout)?.[1];
  t.truthy(password, generated.stdout);
  t.is((await asMailbox('PWD001', password!, out, 'handshake')).code, 0);

  const fromStdin = await adminWithStdin('from-stdin\n', 'mailbox', 'password', 'PWD001', '--password', '-');
  t.is(fromStdin.code, 0, fromStdin.stderr);
  t.false(fromStdin.stdout.includes('from-stdin'), 'a given password is not printed');
  t.is((await asMailbox('PWD001', 'from-stdin', out, 'handshake')).code, 0);

  const audit = (await admin('audit', '--tail', '500', '--json')).stdout;
  t.is(audit.split('\n').filter((line) => line.includes('admin.mailbox.password') && line.includes('PWD001')).length, 2);
  t.false(audit.includes('from-stdin'));

  await writeFile(passwordFile, '\n');
  for (const given of [['--password', ''], ['--password-file', passwordFile]]) {
    for (const command of [['mailbox', 'password', 'PWD001'], ['mailbox', 'create', 'PWD002', '--cert-out', out]]) {
      const refused = await admin(...command, ...given);
      t.is(refused.code, 1);
      t.regex(refused.stderr, /the password must not be empty/);
    }
  }
  t.regex((await admin('mailbox', 'password', 'PWD001', '--password', 'two\nlines')).stderr, /one line without control characters/);
  const noFile = await admin('mailbox', 'password', 'PWD001', '--password-file', join(out, 'nosuch'));
  t.is(noFile.code, 1);
  t.regex(noFile.stderr, /^meshbox: cannot read the password file \(--password-file\) \S+nosuch: ENOENT/);
  const noRequest = await admin('cert', 'sign', join(out, 'nosuch.csr'), '--for', 'PWD001', '--out', join(out, 'x.crt'));
  t.is(noRequest.code, 1);
  t.regex(noRequest.stderr, /^meshbox: cannot read the certificate request \S+nosuch\.csr: ENOENT/);
  t.regex((await admin('mailbox', 'password', 'NOSUCH7', '--password', 'x')).stderr, /no mailbox NOSUCH7/);
  t.regex((await admin('mailbox', 'show', 'PWD002')).stderr, /no mailbox PWD002/);
});

test('cert grant lets the certificates of one mailbox act for another (with its password), which mailbox show lists; ungrant takes it back', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  t.is((await admin('mailbox', 'create', 'GRA001', '--password', 'pw-a', '--cert-out', out)).code, 0);
  t.is((await admin('mailbox', 'create', 'GRB001', '--password', 'pw-b', '--cert-out', out)).code, 0);
  t.regex((await withCertificateOf('GRA001', 'GRB001', 'pw-b', out, 'handshake')).stderr, /HTTP 403/);

  const granted = await admin('cert', 'grant', 'gra001', 'grb001');
  t.is(granted.code, 0, granted.stderr);
  t.regex(granted.stdout, /certificates of GRA001 may now act for GRB001/);
  t.is((await withCertificateOf('GRA001', 'GRB001', 'pw-b', out, 'handshake')).code, 0);
  const actsFor = async (id: string) => JSON.parse((await admin('mailbox', 'show', id)).stdout).certificatesActFor;
  t.deepEqual(await actsFor('GRA001'), ['GRB001']);
  t.deepEqual(await actsFor('GRB001'), []);

  t.is((await admin('cert', 'ungrant', 'GRA001', 'GRB001')).code, 0);
  t.deepEqual(await actsFor('GRA001'), []);
  t.regex((await withCertificateOf('GRA001', 'GRB001', 'pw-b', out, 'handshake')).stderr, /HTTP 403/);
  t.regex((await admin('cert', 'ungrant', 'GRA001', 'GRB001')).stderr, /GRA001 has no grant for GRB001/);
  t.regex((await admin('cert', 'grant', 'GRA001', 'NOSUCH8')).stderr, /no mailbox NOSUCH8/);
  const audit = (await admin('audit', '--tail', '500')).stdout;
  t.regex(audit, /admin\.cert\.grant GRB001 certificates of GRA001/);
  t.regex(audit, /admin\.cert\.ungrant GRB001 certificates of GRA001/);
});

test('mailbox create with a CA key that is not its certificate\'s registers nothing (it would be left without a certificate, its generated password unseen), so the retry works', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  const mismatched = await temporaryDirectory(t, 'mismatched-ca');
  await writeFile(join(mismatched, 'ca.crt'), server.ca.certPem);
  await writeFile(join(mismatched, 'ca.key'), createCertificateAuthority({ commonName: 'another CA' }).keyPem);
  const refused = await runSubprocess(['admin', 'mailbox', 'create', 'CAK001', '--cert-out', out], { env: { ...adminEnv, MESHBOX_PKI_DIR: mismatched } });
  t.is(refused.code, 1);
  t.regex(refused.stderr, /CA key does not match the CA certificate/);
  t.regex((await admin('mailbox', 'show', 'CAK001')).stderr, /no mailbox CAK001/);
  const retried = await admin('mailbox', 'create', 'CAK001', '--cert-out', out);
  t.is(retried.code, 0, retried.stderr);
  t.regex(retried.stdout, /mailbox CAK001 created; .*; password \S+/);
});

test('mailbox create with a certificate folder it cannot write to registers nothing, so the retry works', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  const notAFolder = join(out, 'not-a-folder');
  await writeFile(notAFolder, '');
  const refused = await admin('mailbox', 'create', 'OUT001', '--password', 'pw', '--cert-out', notAFolder);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /cannot write certificates to .*not-a-folder/);
  t.regex((await admin('mailbox', 'show', 'OUT001')).stderr, /no mailbox OUT001/);
  const retried = await admin('mailbox', 'create', 'OUT001', '--password', 'pw', '--cert-out', join(out, 'new-folder'));
  t.is(retried.code, 0, retried.stderr);
  t.true(existsSync(join(out, 'new-folder', 'OUT001.crt')));
});

test('a revocation recorded while the CRL is being written still reaches it: the list is written again until it holds what is recorded', async (t) => {
  const earlier = { serialNumber: 'aa01', revokedAt: new Date(Date.now() - 60_000) };
  const meanwhile = { serialNumber: 'bb02', revokedAt: new Date() };
  // Another admin's revocation lands between this one's reading of the records and its write.
  const reads = [[earlier], [earlier, meanwhile]];
  let read = 0;
  const dir = await temporaryDirectory(t, 'crl-race');
  for (const name of ['ca.crt', 'ca.key']) await writeFile(join(dir, name), await readFile(join(pkiDir, name)));
  await publishRevocationList(dir, async () => reads[Math.min(read++, reads.length - 1)]!);
  const crl = readCrl(dir, '-text');
  t.true(crl.verified);
  t.regex(crl.text, /Serial Number: AA01/i);
  t.regex(crl.text, /Serial Number: BB02/i, 'the revocation recorded meanwhile');
});

test("a revocation another admin records and publishes just after this one read the records is no revocation \"this deployment's records do not\" hold: both end up listed", async (t) => {
  const earlier = { serialNumber: 'cc01', revokedAt: new Date(Date.now() - 60_000) };
  const theirs = { serialNumber: 'dd02', revokedAt: new Date() };
  const records = [earlier];
  const dir = await temporaryDirectory(t, 'crl-race');
  for (const name of ['ca.crt', 'ca.key']) await writeFile(join(dir, name), await readFile(join(pkiDir, name)));
  let otherAdminDone = false;
  const recorded = async () => {
    const read = [...records];
    if (!otherAdminDone) {
      // The records are read; before this admin goes on, the other records its revocation and writes the list.
      otherAdminDone = true;
      records.push(theirs);
      await publishRevocationList(dir, async () => [...records]);
    }
    return read;
  };
  await t.notThrowsAsync(publishRevocationList(dir, recorded));
  const crl = readCrl(dir, '-text');
  t.regex(crl.text, /Serial Number: CC01/i);
  t.regex(crl.text, /Serial Number: DD02/i);
});

test('a key is never written through a file or link already where it is to go: the mailbox is not even registered', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  const elsewhere = join(await temporaryDirectory(t, 'elsewhere'), 'collected.txt');
  await writeFile(elsewhere, 'nothing yet\n');
  await symlink(elsewhere, join(out, 'SYM001.key'));
  const created = await admin('mailbox', 'create', 'SYM001', '--password', 'pw', '--cert-out', out);
  t.is(created.code, 1);
  t.regex(created.stderr, /SYM001\.key exists already and is left as it is/);
  t.is(await readFile(elsewhere, 'utf8'), 'nothing yet\n');
  t.is((await admin('mailbox', 'show', 'SYM001')).code, 1, 'not registered');
});

test('cert sign never replaces a file or writes through a link at --out, and records nothing it could not write', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  t.is((await admin('mailbox', 'create', 'SGN001', '--password', 'pw', '--cert-out', out)).code, 0);
  const own = await temporaryDirectory(t, 'own');
  t.is((await runSubprocess(['cert', 'request', '--for', 'SGN001', '--out', own])).code, 0);
  const csr = join(own, 'SGN001.csr');
  const current = join(own, 'current.crt');
  await writeFile(current, 'the certificate in use\n');
  const elsewhere = join(await temporaryDirectory(t, 'elsewhere'), 'collected.txt');
  await writeFile(elsewhere, 'nothing yet\n');
  await symlink(elsewhere, join(own, 'link.crt'));

  for (const taken of [current, join(own, 'link.crt')]) {
    const refused = await admin('cert', 'sign', csr, '--for', 'SGN001', '--out', taken);
    t.is(refused.code, 1);
    t.regex(refused.stderr, /\.crt exists already and is left as it is: give another --out/);
  }
  t.is(await readFile(current, 'utf8'), 'the certificate in use\n');
  t.is(await readFile(elsewhere, 'utf8'), 'nothing yet\n');
  const noFolder = await admin('cert', 'sign', csr, '--for', 'SGN001', '--out', join(own, 'nodir', 'SGN001.crt'));
  t.is(noFolder.code, 1);
  t.regex(noFolder.stderr, /cannot write certificates to .*nodir: ENOENT/);
  const onRecord = async () => (JSON.parse((await admin('mailbox', 'show', 'SGN001')).stdout) as { certificates: unknown[] }).certificates.length;
  t.is(await onRecord(), 1, 'only the certificate of its creation');
  t.notRegex((await admin('audit', '--tail', '500')).stdout, /admin\.cert\.sign SGN001/);

  const signed = await admin('cert', 'sign', csr, '--for', 'SGN001', '--out', join(own, 'SGN001.crt'));
  t.is(signed.code, 0, signed.stderr);
  t.is((await asMailbox('SGN001', 'pw', own, 'handshake')).code, 0);
  t.is(await onRecord(), 2);
  t.regex((await admin('audit', '--tail', '500')).stdout, /admin\.cert\.sign SGN001/);
});

test('cert sign and cert issue whose certificate cannot be recorded (Redis refusing writes) remove the files they wrote: none is in use unrecorded', async (t) => {
  const redis = await startTestRedis();
  try {
    const env = { ...adminEnv, MESHBOX_REDIS_URL: redis.url };
    const out = await temporaryDirectory(t, 'certs');
    t.is((await runSubprocess(['admin', 'mailbox', 'create', 'SGN002', '--password', 'pw', '--cert-out', out], { env })).code, 0);
    const own = await temporaryDirectory(t, 'own');
    t.is((await runSubprocess(['cert', 'request', '--for', 'SGN002', '--out', own])).code, 0);
    // The first admin command after the mailbox's creation keeps the secret key's check value, a write.
    t.is((await runSubprocess(['admin', 'mailbox', 'show', 'SGN002'], { env })).code, 0);
    // Reads still answered, every write refused (NOREPLICAS): the mailbox is found, the certificate cannot go on record.
    await redis.admin.config('SET', 'min-replicas-to-write', '1');
    const target = join(own, 'SGN002.crt');
    const refused = await runSubprocess(['admin', 'cert', 'sign', join(own, 'SGN002.csr'), '--for', 'SGN002', '--out', target], { env });
    t.is(refused.code, 1);
    t.regex(refused.stderr, /could not be recorded.*was removed/);
    t.false(existsSync(target));

    // So does cert issue, its key with it.
    const again = await temporaryDirectory(t, 'certs');
    const notIssued = await runSubprocess(['admin', 'cert', 'issue', 'SGN002', '--cert-out', again], { env });
    t.is(notIssued.code, 1);
    t.regex(notIssued.stderr, /could not be recorded.*were removed \(nothing was issued\)/);
    t.deepEqual(await readdir(again), []);
  } finally {
    await redis.stop();
  }
});

test('mailbox create killed before it writes its key leaves no certificate on record that no file holds (it would be listed as in use): the mailbox is registered, and cert issue gives it one', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  const killAt = { NODE_OPTIONS: `--import ${join(import.meta.dirname, 'support/kill-at.mjs')}`, MESHBOX_TEST_KILL_AT: JSON.stringify({ op: 'open', match: 'KILL01\\.key' }) };
  const killed = await runSubprocess(['admin', 'mailbox', 'create', 'KILL01', '--password', 'pw', '--cert-out', out], { env: { ...adminEnv, ...killAt } });
  t.regex(killed.stderr, /kill-at: SIGKILL before open/);
  t.deepEqual(await readdir(out), []);
  t.deepEqual(JSON.parse((await admin('mailbox', 'show', 'KILL01')).stdout).certificates, [], 'no certificate on record');
  const issued = await admin('cert', 'issue', 'KILL01', '--cert-out', out);
  t.is(issued.code, 0, issued.stderr);
  t.is(JSON.parse((await admin('mailbox', 'show', 'KILL01')).stdout).certificates.length, 1);
});

test('cert revoke whose CRL cannot be written says the certificate is revoked all the same, and how to write the CRL', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  t.is((await admin('mailbox', 'create', 'CRL001', '--password', 'pw', '--cert-out', out)).code, 0);
  const dir = await temporaryDirectory(t, 'crl-blocked');
  for (const name of ['ca.crt', 'ca.key']) await writeFile(join(dir, name), await readFile(join(pkiDir, name)));
  // A folder (not empty) where the CRL is to go: it cannot be written over.
  await mkdir(join(dir, 'crl.pem', 'inside'), { recursive: true });
  const revoked = await admin('--pki-dir', dir, 'cert', 'revoke', 'CRL001');
  t.is(revoked.code, 1);
  t.regex(revoked.stderr, /revoked all the same .*but the CRL could not be written .*meshbox admin cert crl/);
  const [serial] = await server.services.certificates.issuedTo('CRL001');
  t.true(await server.services.certificates.isRevoked(serial!), 'the revocation is recorded');
  await rm(join(dir, 'crl.pem'), { recursive: true });
  t.is((await admin('--pki-dir', dir, 'cert', 'crl')).code, 0);
});

test('admin audit shows control characters in an entry escaped, not as codes for the terminal', async (t) => {
  const messageId = `CTRL${Date.now()}`;
  await server.services.audit.record({ action: 'send', actor: 'X26OT001', messageId, detail: 'to \u001b]0;pwned\u0007\u009b2J' });
  for (const json of [false, true]) {
    const shown = await admin('audit', '--tail', '500', ...(json ? ['--json'] : []));
    t.is(shown.code, 0, shown.stderr);
    const line = shown.stdout.split('\n').find((entry) => entry.includes(messageId)) ?? '';
    t.false(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(line), JSON.stringify(line));
    t.true(line.includes('\\u001b]0;pwned\\u0007\\u009b2J'), line);
    if (json) t.is(JSON.parse(line).detail, 'to \u001b]0;pwned\u0007\u009b2J', 'still JSON, the same text');
  }
});

/** A message id made now whose audit entries share `messageId`'s shard: another message of the same stream. */
function idSharingShardWith(messageId: string): string {
  for (;;) {
    const other = newMessageId(new Date());
    if (other !== messageId && crc32(other) % AUDIT_SHARDS === crc32(messageId) % AUDIT_SHARDS) return other;
  }
}

test("admin message traces a message: its record, its next check and its audit story of send, download and acknowledgement, in order, without another message's entries of the same shard", async (t) => {
  const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
  const messageId = await sendMessage(server, lab, gp, 'trace me', { 'mex-Subject': 'FBC result', 'mex-LocalID': 'SPEC-42', 'mex-FileName': 'fbc.txt' });
  const other = idSharingShardWith(messageId);
  await server.services.audit.record({ action: 'send', actor: lab.id, messageId: other, detail: `to ${gp.id}` });
  t.is((await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` })).status, 200);
  await server.services.audit.record({ action: 'download', actor: gp.id, messageId: other, detail: 'chunk 1' });
  t.is((await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${messageId}/status/acknowledged` })).status, 200);
  await server.settled();

  // Lower case, as ids are on the wire.
  const shown = await admin('message', messageId.toLowerCase(), '--json');
  t.is(shown.code, 0, shown.stderr);
  const trace = JSON.parse(shown.stdout);
  t.is(trace.messageId, messageId);
  t.like(trace.record, { sender: lab.id, recipient: gp.id, workflowId: 'PATH_RESULTS', status: 'acknowledged', subject: 'FBC result', localId: 'SPEC-42', fileName: 'fbc.txt', size: 8, totalChunks: 1 });
  t.like(trace.record.statusDetail, { code: '00', event: 'TRANSFER' });
  for (const at of ['createdAt', 'acceptedAt', 'acknowledgedAt', 'statusAt']) t.false(Number.isNaN(Date.parse(trace.record[at])), at);
  t.true(Date.parse(trace.nextCheck) > Date.now(), 'its purge, after the payload retention');
  t.deepEqual(
    trace.audit.entries.map((entry: { action: string; actor: string; messageId: string }) => [entry.action, entry.actor, entry.messageId]),
    [['send', lab.id, messageId], ['download', gp.id, messageId], ['acknowledge', gp.id, messageId]],
  );
  t.is(trace.audit.stoppedAt, null, 'the shard read to its end');
  t.true(trace.audit.entriesRead >= 5, 'the other message\'s entries were read, and left out');

  const text = await admin('message', messageId);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, new RegExp(`^message ${messageId}\\n  type: DATA\\n  sender: ${lab.id}\\n  recipient: ${gp.id}\\n  workflow: PATH_RESULTS\\n  status: acknowledged \\(code 00, event TRANSFER: `));
  t.regex(text.stdout, /^ {2}subject: FBC result$/m);
  t.regex(text.stdout, /^ {2}local id: SPEC-42$/m);
  t.regex(text.stdout, /^next lifecycle check: \d{4}-\d\d-\d\dT/m);
  const story = text.stdout.split('\n').filter((line) => /^ {2}\d{4}-/.test(line));
  t.deepEqual(story.map((line) => line.replace(/^ {2}\S+ \S+ /, '')), [`send to ${gp.id}`, 'download chunk 1', 'acknowledge']);
  t.notRegex(text.stdout, /scan stopped/);
});

test("admin message finds a message by its sender's local id: one is traced, several are listed by id to trace, none is said so; the two forms exclude each other", async (t) => {
  const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
  const once = await sendMessage(server, lab, gp, 'one', { 'mex-LocalID': 'SPEC-1' });
  const twice = [await sendMessage(server, lab, gp, 'two', { 'mex-LocalID': 'SPEC-2' }), await sendMessage(server, lab, gp, 'again', { 'mex-LocalID': 'SPEC-2' })];
  await server.settled();

  const traced = await admin('message', '--sender', lab.id.toLowerCase(), '--local-id', 'SPEC-1', '--json');
  t.is(traced.code, 0, traced.stderr);
  t.like(JSON.parse(traced.stdout), { messageId: once, record: { localId: 'SPEC-1', sender: lab.id } });
  const lookups = (await admin('audit', '--tail', '500', '--json')).stdout.trim().split('\n').map((line) => JSON.parse(line));
  t.true(lookups.some((entry) => entry.action === 'admin.message' && entry.subject === once), 'the message traced is on record as looked at');

  const several = JSON.parse((await admin('message', '--sender', lab.id, '--local-id', 'SPEC-2', '--json')).stdout);
  t.like(several, { sender: lab.id, localId: 'SPEC-2', count: 2 });
  t.deepEqual([...several.messageIds].sort(), [...twice].sort());
  const listed = await admin('message', '--sender', lab.id, '--local-id', 'SPEC-2');
  t.is(listed.stdout, `2 messages of ${lab.id} carry local id SPEC-2: trace each by its id\n${several.messageIds.map((id: string) => `  ${id}`).join('\n')}\n`);

  const none = await admin('message', '--sender', gp.id, '--local-id', 'SPEC-1');
  t.is(none.code, 0, none.stderr);
  t.regex(none.stdout, new RegExp(`^no message of ${gp.id} carries local id SPEC-1 \\(`));
  // What was asked (the local id may be a patient's reference) is on record however many were found.
  const asked = (await admin('audit', '--tail', '500', '--json')).stdout.trim().split('\n').map((line) => JSON.parse(line));
  t.like(asked.find((entry) => entry.action === 'admin.message' && entry.subject === lab.id), { detail: 'local id SPEC-2: 2 found' });
  t.like(asked.find((entry) => entry.action === 'admin.message' && entry.subject === gp.id), { detail: 'local id SPEC-1: 0 found' });

  for (const args of [[once, '--sender', lab.id, '--local-id', 'SPEC-1'], ['--sender', lab.id], ['--local-id', 'SPEC-1'], []]) {
    const refused = await admin('message', ...args);
    t.is(refused.code, 2, `a usage error: ${args.join(' ')}: ${refused.stderr}`);
    t.regex(refused.stderr, /give a message id, or --sender and --local-id|--sender and --local-id go together/);
  }
  t.is((await admin('message', '--sender', 'not/a/mailbox', '--local-id', 'x')).code, 2);
});

test('admin message of an id with no record says so, and shows what the audit log still holds of it; one found nowhere is said to be', async (t) => {
  const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
  const messageId = await sendMessage(server, lab, gp, 'purged');
  // As its purge leaves it: the record gone, the audit entries kept for their own retention.
  await server.redis.unlink(`${server.redisPrefix}message:{${messageId}}`);
  const shown = await admin('message', messageId);
  t.is(shown.code, 0, shown.stderr);
  t.regex(shown.stdout, /^ {2}no record: never sent, or purged \(a record is kept MESHBOX_MESSAGE_RETENTION_SECONDS after its message was accepted\); its audit entries below$/m);
  t.regex(shown.stdout, new RegExp(`^  \\S+ ${lab.id} send to ${gp.id}$`, 'm'));
  t.is(JSON.parse((await admin('message', messageId, '--json')).stdout).record, null);

  const unknown = newMessageId(new Date());
  const nowhere = await admin('message', unknown);
  t.is(nowhere.code, 0, nowhere.stderr);
  t.is(nowhere.stdout, `no record and no audit entries for ${unknown} (audit entries are kept for MESHBOX_AUDIT_RETENTION_SECONDS, 30 days by default)\n`);
  const json = JSON.parse((await admin('message', unknown, '--json')).stdout);
  t.like(json, { messageId: unknown, record: null, nextCheck: null, audit: { stoppedAt: null, entries: [] } });
});

test('admin message refuses what is no message id (exit 1), and reads the shard of an id whose digits are no time from its start, of any other from a little before its time', async (t) => {
  for (const bad of ['abc', '20261129123456000001', '20261129123456000001_ABCDEG', '../etc/passwd']) {
    const refused = await admin('message', bad);
    t.is(refused.code, 1, bad);
    t.regex(refused.stderr, /not a message id: .* \(MESH ids look like 20200529155357895317_3573F8\)/);
  }
  // The shape of an id, in a 13th month: its entries are found all the same.
  const timeless = '20261399000000000000_ABCDEF';
  await server.services.audit.record({ action: 'send', actor: 'X26OT001', messageId: timeless });
  const fromStart = JSON.parse((await admin('message', timeless, '--json')).stdout);
  t.is(fromStart.audit.from, null);
  t.deepEqual(fromStart.audit.entries.map((entry: { action: string }) => entry.action), ['send']);
  // An id of a later time: its shard is read from five minutes before it, past what is there now.
  const later = newMessageId(new Date('2099-01-01T00:00:00.000Z'));
  await server.services.audit.record({ action: 'send', actor: 'X26OT001', messageId: later });
  const fromItsTime = JSON.parse((await admin('message', later, '--json')).stdout);
  t.is(fromItsTime.audit.from, '2098-12-31T23:55:00.000Z');
  t.deepEqual(fromItsTime.audit.entries, []);
});

test('admin message reads at most --scan entries of the shard, and says where it stopped before the end of the log: the story may go on', async (t) => {
  // A deployment of its own: its shard holds these three entries only.
  const own = await startTestServer({ worker: false });
  try {
    const messageId = newMessageId(new Date());
    for (const action of ['send', 'download', 'acknowledge']) await own.services.audit.record({ action, actor: 'X26OT001', messageId });
    const trace = async (...args: string[]) => JSON.parse((await runSubprocess(['admin', 'message', messageId, '--json', ...args], { env: { ...adminEnv, MESHBOX_REDIS_PREFIX: own.redisPrefix } })).stdout);
    const bounded = await trace('--scan', '2');
    t.like(bounded.audit, { entriesRead: 2 });
    t.deepEqual(bounded.audit.entries.map((entry: { action: string }) => entry.action), ['send', 'download']);
    t.is(bounded.audit.stoppedAt, bounded.audit.entries[1].at, 'the time of the last entry read');
    const text = await runSubprocess(['admin', 'message', messageId, '--scan', '2'], { env: { ...adminEnv, MESHBOX_REDIS_PREFIX: own.redisPrefix } });
    t.is(text.code, 0, text.stderr);
    t.regex(text.stdout, new RegExp(`^scan stopped after 2 entries, at ${bounded.audit.stoppedAt.replace(/\./g, '\\.')}, before the end of the log: the story may go on \\(a larger --scan reads further\\)$`, 'm'));

    // Each lookup is on record, in the message's shard, after what it read (and left out of the story).
    const lookups = (await runSubprocess(['admin', 'audit', '--json'], { env: { ...adminEnv, MESHBOX_REDIS_PREFIX: own.redisPrefix } })).stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
      .filter((entry) => entry.action === 'admin.message');
    t.deepEqual(lookups.map((entry) => entry.subject), [messageId, messageId]);
    // A bound that ends with the log (the three entries and the two lookups) stops nowhere short of it.
    const whole = await trace('--scan', '5');
    t.like(whole.audit, { entriesRead: 5, stoppedAt: null });
    t.deepEqual(whole.audit.entries.map((entry: { action: string }) => entry.action), ['send', 'download', 'acknowledge']);
    t.is((await runSubprocess(['admin', 'message', messageId, '--scan', '0'], { env: adminEnv })).code, 2, 'a usage error');
  } finally {
    await own.close();
  }
});

test("cert revoke and cert crl pointed at another deployment's records (a forgotten MESHBOX_REDIS_PREFIX) refuse to write a CRL that drops what crl.pem revokes, and record nothing; --keep-listed records those revocations", async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  t.is((await admin('mailbox', 'create', 'KEEP001', '--password', 'pw', '--cert-out', out)).code, 0);
  const dir = await temporaryDirectory(t, 'crl-kept');
  for (const name of ['ca.crt', 'ca.key']) await writeFile(join(dir, name), await readFile(join(pkiDir, name)));
  const revoked = await admin('--pki-dir', dir, 'cert', 'revoke', 'KEEP001');
  t.is(revoked.code, 0, revoked.stderr);
  const [serial] = await server.services.certificates.issuedTo('KEEP001');
  const listed = await readFile(join(dir, 'crl.pem'), 'utf8');
  t.true(readCrl(dir, '-text').text.includes(`Serial Number: ${serial!.toUpperCase()}`));

  const elsewhere = { ...adminEnv, MESHBOX_REDIS_PREFIX: `${server.redisPrefix}typo-`, MESHBOX_PKI_DIR: dir };
  const other = 'abcdef0123';
  for (const args of [['cert', 'revoke', other, '--unrecorded'], ['cert', 'crl']]) {
    const refused = await runSubprocess(['admin', ...args], { env: elsewhere });
    t.is(refused.code, 1, args.join(' '));
    // Other tests revoke in this deployment meanwhile: the list holds theirs too.
    t.regex(refused.stderr, /crl\.pem lists \d+ revoked certificates? this deployment's records do not \(serial [0-9a-f]+(, \.\.\.)?\): are MESHBOX_REDIS_URL and MESHBOX_REDIS_PREFIX .* nothing was changed.*--keep-listed/);
    t.is(await readFile(join(dir, 'crl.pem'), 'utf8'), listed, 'the list is as it was');
  }
  const keys = redisKeys(`${server.redisPrefix}typo-`);
  t.is(await server.redis.hlen(keys.revokedCertificates), 0, 'nothing recorded there');

  const kept = await runSubprocess(['admin', 'cert', 'crl', '--keep-listed'], { env: elsewhere });
  t.is(kept.code, 0, kept.stderr);
  t.regex(kept.stdout, new RegExp(`recorded as revoked \\(listed in crl\\.pem\\): serial ${serial}`));
  t.true(readCrl(dir, '-text').text.includes(`Serial Number: ${serial!.toUpperCase()}`), 'still listed');
  // The list dates a revocation to the second.
  const revokedAt = Number(await server.redis.hget(redisKeys(server.redisPrefix).revokedCertificates, serial!));
  t.is(Number(await server.redis.hget(keys.revokedCertificates, serial!)), revokedAt - (revokedAt % 1000), 'recorded with the date the list gives');
});

test("cert sign refuses a key certified for another holder already (a mailbox's, for another mailbox or a monitoring system), the same primes under another public exponent too: revoking either's certificates would leave the key in force", async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  for (const id of ['KEYA001', 'KEYB001']) t.is((await admin('mailbox', 'create', id, '--password', 'pw', '--cert-out', out)).code, 0);
  const key = forge.pki.privateKeyFromPem(await readFile(join(out, 'KEYA001.key'), 'utf8')) as forge.pki.rsa.PrivateKey;
  const totient = key.p.subtract(forge.jsbn.BigInteger.ONE).multiply(key.q.subtract(forge.jsbn.BigInteger.ONE));
  const requestFor = async (name: string, exponent: forge.jsbn.BigInteger): Promise<string> => {
    const one = forge.jsbn.BigInteger.ONE;
    const d = exponent.modInverse(totient);
    const request = forge.pki.createCertificationRequest();
    request.publicKey = forge.pki.setRsaPublicKey(key.n, exponent);
    request.setSubject([{ name: 'commonName', value: name }]);
    request.sign(forge.pki.setRsaPrivateKey(key.n, exponent, d, key.p, key.q, d.mod(key.p.subtract(one)), d.mod(key.q.subtract(one)), key.qInv), forge.md.sha256.create());
    const file = join(out, `${name}-${exponent.toString(10)}.csr`);
    await writeFile(file, forge.pki.certificationRequestToPem(request));
    return file;
  };
  const sameExponent = key.e;
  // Another valid exponent: the first odd one past 65537 that shares no factor with (p-1)(q-1).
  let otherExponent = new forge.jsbn.BigInteger('65539');
  while (!otherExponent.gcd(totient).equals(forge.jsbn.BigInteger.ONE)) otherExponent = otherExponent.add(new forge.jsbn.BigInteger('2'));
  for (const [name, exponent, usage] of [
    ['KEYB001', sameExponent, 'client'],
    ['KEYB001', otherExponent, 'client'],
    ['KEYMON1', sameExponent, 'monitoring'],
  ] as const) {
    const refused = await admin('cert', 'sign', await requestFor(name, exponent), '--out', join(out, `${name}.refused.crt`), '--for', name, '--usage', usage);
    t.is(refused.code, 1, `${name} e=${exponent.toString(10)}`);
    t.regex(refused.stderr, /the request's key is certified for KEYA001 already: a key is one holder's, so nothing was signed; have a new key made/);
    t.false(existsSync(join(out, `${name}.refused.crt`)));
  }
  // Its own holder's renewal, under either exponent, is signed.
  for (const exponent of [sameExponent, otherExponent]) {
    const renewed = await admin('cert', 'sign', await requestFor('KEYA001', exponent), '--out', join(out, `KEYA001-${exponent.toString(10)}.crt`), '--for', 'KEYA001');
    t.is(renewed.code, 0, renewed.stderr);
  }
});

test("cert sign refuses a key whose certificates are all revoked (it may be what was compromised) unless told --reuse-revoked-key; a renewal keeping the key of a certificate still in force is signed", async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  t.is((await admin('mailbox', 'create', 'RKEY001', '--password', 'pw', '--cert-out', out)).code, 0);
  const own = await temporaryDirectory(t, 'own');
  t.is((await runSubprocess(['cert', 'request', '--for', 'RKEY001', '--out', own])).code, 0);
  const csr = join(own, 'RKEY001.csr');
  const first = await admin('cert', 'sign', csr, '--out', join(own, 'first.crt'), '--for', 'RKEY001');
  t.is(first.code, 0, first.stderr);
  // A renewal with the same key while the first certificate is in force, then the first revoked.
  const renewed = await admin('cert', 'sign', csr, '--out', join(own, 'renewed.crt'), '--for', 'RKEY001');
  t.is(renewed.code, 0, renewed.stderr);
  const serialOf = (signed: CliResult) => /\(serial ([0-9a-f]+)\)/.exec(signed.stdout)![1]!;
  t.is((await admin('cert', 'revoke', serialOf(first))).code, 0);
  const again = await admin('cert', 'sign', csr, '--out', join(own, 'again.crt'), '--for', 'RKEY001');
  t.is(again.code, 0, again.stderr);

  // Every certificate of the mailbox revoked (its key stolen): the same key is refused, nothing written.
  t.is((await admin('cert', 'revoke', 'RKEY001')).code, 0);
  const refused = await admin('cert', 'sign', csr, '--out', join(own, 'refused.crt'), '--for', 'RKEY001');
  t.is(refused.code, 1);
  t.regex(refused.stderr, /the request's key is that of certificates all revoked \(serial [0-9a-f]+, [0-9a-f]+, [0-9a-f]+\): a revoked certificate's key may be compromised, so nothing was signed; .*--reuse-revoked-key/);
  t.false(existsSync(join(own, 'refused.crt')));
  const told = await admin('cert', 'sign', csr, '--out', join(own, 'told.crt'), '--for', 'RKEY001', '--reuse-revoked-key');
  t.is(told.code, 0, told.stderr);
  await writeFile(join(own, 'RKEY001.crt'), await readFile(join(own, 'told.crt')));
  t.is((await asMailbox('RKEY001', 'pw', own, 'handshake')).code, 0, 'the certificate signed when told is in force');
});

test('mailbox update corrects the name and ODS code, checked as create checks them: endpoint lookup finds the mailbox under its new code at once, and the change is audited; values it has already change nothing and are not audited', async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  t.is((await admin('mailbox', 'create', 'UPD001', '--password', 'p', '--ods', 'X26', '--name', 'Wrong Trust', '--workflow', 'UPD_RESULTS', '--cert-out', out)).code, 0);
  const asker = await server.createMailbox();
  const lookup = async (ods: string) =>
    (await rawRequest(server, { path: `/messageexchange/endpointlookup/${ods}/UPD_RESULTS`, clientCertificate: asker, headers: { accept: 'application/vnd.mesh.v2+json' } })).json().results;
  t.deepEqual(await lookup('X26'), [{ mailbox_id: 'UPD001', mailbox_name: 'Wrong Trust' }]);

  for (const [flag, value] of [['--ods', 'Y2/6'], ['--ods', ''], ['--name', 'Two\nlines'], ['--name', 'x'.repeat(201)]]) {
    const refused = await admin('mailbox', 'update', 'UPD001', flag!, value!);
    t.is(refused.code, 2, `${flag} ${JSON.stringify(value)}`);
    t.regex(refused.stderr, flag === '--ods' ? /Give an ODS code: 1 to 12 letters and digits/ : /Give a name of at most 200 characters, on one line/);
  }
  const neither = await admin('mailbox', 'update', 'UPD001');
  t.is(neither.code, 2);
  t.regex(neither.stderr, /give --name, --ods or both/);
  t.like(JSON.parse((await admin('mailbox', 'show', 'UPD001')).stdout), { odsCode: 'X26', name: 'Wrong Trust' }, 'nothing changed by a refused update');

  const updated = await admin('mailbox', 'update', 'upd001', '--ods', ' y26 ', '--name', 'Right Trust');
  t.is(updated.code, 0, updated.stderr);
  t.is(updated.stdout, 'mailbox UPD001 updated: ODS code X26 -> Y26; name "Wrong Trust" -> "Right Trust"\n');
  t.like(JSON.parse((await admin('mailbox', 'show', 'UPD001')).stdout), { odsCode: 'Y26', name: 'Right Trust' });
  t.deepEqual(await lookup('X26'), [], 'gone from its old code');
  t.deepEqual(await lookup('Y26'), [{ mailbox_id: 'UPD001', mailbox_name: 'Right Trust' }]);
  t.is((await asMailbox('UPD001', 'p', out, 'handshake')).code, 0, 'its certificate, naming the old organisation, still connects');

  const nameOnly = await admin('mailbox', 'update', 'UPD001', '--name', 'Right Trust pathology');
  t.is(nameOnly.stdout, 'mailbox UPD001 updated: name "Right Trust" -> "Right Trust pathology"\n');
  t.deepEqual(await lookup('Y26'), [{ mailbox_id: 'UPD001', mailbox_name: 'Right Trust pathology' }]);

  const same = await admin('mailbox', 'update', 'UPD001', '--ods', 'Y26', '--name', 'Right Trust pathology');
  t.is(same.code, 0, same.stderr);
  t.is(same.stdout, 'mailbox UPD001 has those values already: nothing changed\n');
  const entries = (await admin('audit', '--tail', '500', '--json')).stdout.trim().split('\n').map((line) => JSON.parse(line)).filter((entry) => entry.subject === 'UPD001');
  t.deepEqual(
    entries.filter((entry) => entry.action === 'admin.mailbox.update').map((entry) => entry.detail),
    ['ODS code X26 -> Y26; name "Wrong Trust" -> "Right Trust"', 'name "Right Trust" -> "Right Trust pathology"'],
  );

  const unknown = await admin('mailbox', 'update', 'NOSUCH2', '--name', 'Anyone');
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /no mailbox NOSUCH2/);
});

test("cert revoke and cert crl leave out of the CRL a revoked certificate further past its end than a list's lifetime (30 days), its revocation kept on record; the check of crl.pem against the records takes no such omission for a record missing", async (t) => {
  const out = await temporaryDirectory(t, 'certs');
  const dir = await temporaryDirectory(t, 'crl-pruned');
  for (const name of ['ca.crt', 'ca.key']) await writeFile(join(dir, name), await readFile(join(pkiDir, name)));
  const inDir = (...args: string[]) => admin('--pki-dir', dir, ...args);
  for (const id of ['PRUNE01', 'PRUNE02']) t.is((await admin('mailbox', 'create', id, '--password', 'pw', '--cert-out', out)).code, 0);
  const [[ended], [endedLately]] = [await server.services.certificates.issuedTo('PRUNE01'), await server.services.certificates.issuedTo('PRUNE02')];
  const unrecorded = 'abcdef0457';
  for (const args of [['PRUNE01'], ['PRUNE02'], [unrecorded, '--unrecorded']]) t.is((await inDir('cert', 'revoke', ...args)).code, 0, args.join(' '));
  const listed = () => [...readCrl(dir, '-text').text.matchAll(/Serial Number: (\w+)/g)].map((match) => match[1]!.toLowerCase());
  t.deepEqual(listed().filter((serial) => [ended, endedLately, unrecorded].includes(serial)).sort(), [ended!, endedLately!, unrecorded].sort());

  // The records, not the certificates, say when each ends: these two have ended, one long ago.
  const day = 86_400_000;
  const expiry = redisKeys(server.redisPrefix).certificateExpiry;
  await server.redis.hset(expiry, ended!, String(Date.now() - 31 * day), endedLately!, String(Date.now() - day));
  const rewritten = await inDir('cert', 'crl');
  t.is(rewritten.code, 0, rewritten.stderr);
  t.false(listed().includes(ended!), 'ended more than 30 days ago: left out');
  t.true(listed().includes(endedLately!), 'ended within the last 30 days: a list issued after its end has it');
  t.true(listed().includes(unrecorded), 'no end on record: kept');
  t.like(JSON.parse((await admin('mailbox', 'show', 'PRUNE01')).stdout).certificates[0], { serial: ended, revoked: true }, 'its revocation stays on record');
  t.is((await mailboxRequest(server, { id: 'PRUNE01', password: 'pw', certPem: await readFile(join(out, 'PRUNE01.crt'), 'utf8'), keyPem: await readFile(join(out, 'PRUNE01.key'), 'utf8') }, { path: '/messageexchange/PRUNE01/inbox' })).status, 403, 'and is still checked');

  // The list written next is checked against the records again: what this one left out is no record missing.
  t.is((await admin('mailbox', 'create', 'PRUNE03', '--password', 'pw', '--cert-out', out)).code, 0);
  const revokedNext = await inDir('cert', 'revoke', 'PRUNE03');
  t.is(revokedNext.code, 0, revokedNext.stderr);
  t.true(listed().includes((await server.services.certificates.issuedTo('PRUNE03'))[0]!));
  t.false(listed().includes(ended!));
});

test('ca init --force, replacing a CA (every certificate it signed stops working), is recorded in the audit log; with no Redis to reach it is done all the same, and says it was not recorded', async (t) => {
  const dir = await temporaryDirectory(t, 'ca');
  const entriesFor = async () =>
    (await admin('audit', '--tail', '1000', '--json')).stdout
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line))
      .filter((entry) => entry.action.startsWith('admin.ca.') && entry.detail.includes(dir));
  t.is((await admin('--pki-dir', dir, 'ca', 'init', '--name', 'First CA')).code, 0);
  t.deepEqual(await entriesFor(), [], 'a first CA replaces nothing');

  const replaced = await admin('--pki-dir', dir, 'ca', 'init', '--force', '--name', 'Second CA');
  t.is(replaced.code, 0, replaced.stderr);
  t.is(replaced.stderr, '');
  const serial = describeCertificate(await readFile(join(dir, 'ca.crt'), 'utf8')).serialNumber;
  const [entry, ...others] = await entriesFor();
  t.deepEqual(others, []);
  t.like(entry, { action: 'admin.ca.replace', subject: 'Second CA' });
  t.regex(entry.actor, /^admin:/);
  t.regex(entry.detail, new RegExp(`^serial ${serial} in ${dir}; the previous CA kept as ${dir}/ca-\\S+\\.crt, ${dir}/ca-\\S+\\.key, ${dir}/crl-\\S+\\.pem$`));

  const offline = await runSubprocess(['admin', '--pki-dir', dir, 'ca', 'init', '--force', '--name', 'Third CA'], { env: { ...adminEnv, MESHBOX_REDIS_URL: 'redis://127.0.0.1:1' } });
  t.is(offline.code, 0, offline.stderr);
  t.is(describeCertificate(await readFile(join(dir, 'ca.crt'), 'utf8')).subjectCommonName, 'Third CA', 'replaced all the same');
  t.is(offline.stderr, 'warning: not recorded in the audit log: cannot reach Redis at redis://127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1\n');
  t.is((await entriesFor()).length, 1);
});

test('ca init --force on a machine without MESHBOX_REDIS_URL and no local development services (a CA machine) starts nothing for the record: it says the replacement was not recorded', async (t) => {
  // A checkout of its own, whose development services (under its var/services) were never started.
  const checkout = await temporaryDirectory(t, 'ca-machine');
  for (const folder of ['client-cli/src', 'server/src', 'shared/src', 'scripts']) await cp(join(REPO_ROOT, folder), join(checkout, folder), { recursive: true });
  await cp(join(REPO_ROOT, 'package.json'), join(checkout, 'package.json'));
  await symlink(join(REPO_ROOT, 'node_modules'), join(checkout, 'node_modules'));
  const dir = join(checkout, 'pki');
  const caInit = (...args: string[]) =>
    new Promise<{ code: number | null; stderr: string }>((done) =>
      execFile(process.execPath, [join(checkout, 'client-cli/src/main.js'), 'admin', '--pki-dir', dir, 'ca', 'init', ...args], { env: { PATH: process.env.PATH, MESHBOX_SECRET_KEY: TEST_SECRET_KEY } }, (error, _stdout, stderr) =>
        done({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stderr }),
      ),
    );
  try {
    t.is((await caInit('--name', 'First CA')).code, 0);
    const replaced = await caInit('--force', '--name', 'Second CA');
    t.is(replaced.code, 0, replaced.stderr);
    t.is(describeCertificate(await readFile(join(dir, 'ca.crt'), 'utf8')).subjectCommonName, 'Second CA');
    t.is(replaced.stderr, 'warning: not recorded in the audit log: MESHBOX_REDIS_URL is not set, and no local development Redis runs\n');
    t.false(existsSync(join(checkout, 'var')), 'no development service was started');
  } finally {
    // Had they been started (by that checkout's own scripts), they would run on after the test.
    const started = await readFile(join(checkout, 'var/services/services.json'), 'utf8').then((text) => JSON.parse(text) as Record<string, { pid: number }>, () => ({}));
    for (const { pid } of Object.values(started)) process.kill(pid);
  }
});
