import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, get as httpsGet, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import test, { type ExecutionContext } from 'ava';
import forge from 'node-forge';
import {
  type CertificateAndKey,
  createCertificateAuthority,
  createCertificateRequest,
  createRevocationList,
  describeCertificate,
  issueMailboxCertificate,
  issueServerCertificate,
  normalizeSerialNumber,
  signCertificateRequest,
  verifyIssuedBy,
} from '../src/pki/index.ts';
import { temporaryDirectory } from '../../test/support/temporary-directory.ts';

// Real TLS handshakes against Node's https server, no mocks. Keys are generated once for the file
// (about 30 ms each with native RSA) and shared by the tests, which only read them.
const ca = createCertificateAuthority({ commonName: 'meshbox test CA' });
const otherCa = createCertificateAuthority({ commonName: 'some other CA' });
const serverCertificate = issueServerCertificate({
  ca,
  commonName: 'localhost',
  dnsNames: ['localhost'],
  ipAddresses: ['127.0.0.1'],
});
const alice = issueMailboxCertificate({ ca, mailboxId: 'x26abc001', organisation: 'Test Trust' });
const bob = issueMailboxCertificate({ ca, mailboxId: 'X26ABC002' });
const aliceFromOtherCa = issueMailboxCertificate({ ca: otherCa, mailboxId: 'X26ABC001' });

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

/**
 * A mutual-TLS https server on 127.0.0.1 that answers with the CN of the client certificate.
 * `rejectUnauthorized: false` is only for asking why a certificate fails verification: the server
 * then completes the handshake and answers `refused: <OpenSSL verify error code>` instead.
 */
async function startServer(
  t: ExecutionContext,
  options: { crl?: string; certificate?: CertificateAndKey; rejectUnauthorized?: boolean } = {},
): Promise<{ readonly port: number }> {
  const certificate = options.certificate ?? serverCertificate;
  const server: Server = createServer(
    {
      cert: certificate.certPem,
      key: certificate.keyPem,
      ca: ca.certPem,
      requestCert: true,
      rejectUnauthorized: options.rejectUnauthorized ?? true,
      minVersion: 'TLSv1.2',
      ...(options.crl === undefined ? {} : { crl: options.crl }),
    },
    (request, response) => {
      const socket = request.socket as TLSSocket;
      response.end(socket.authorized ? socket.getPeerCertificate().subject.CN : `refused: ${String(socket.authorizationError)}`);
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return { port: (server.address() as AddressInfo).port };
}

/** GET / over a fresh connection (no agent: no TLS session reuse between attempts); resolves with the body. */
function fetchCommonName(
  port: number,
  options: { client?: CertificateAndKey; servername?: string; trustedCaPem?: string } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = httpsGet(
      {
        host: '127.0.0.1',
        port,
        path: '/',
        agent: false,
        ca: options.trustedCaPem ?? ca.certPem,
        ...(options.servername === undefined ? {} : { servername: options.servername }),
        ...(options.client ? { cert: options.client.certPem, key: options.client.keyPem } : {}),
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve(body));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
  });
}

const opensslAvailable = spawnSync('openssl', ['version']).status === 0;
const withOpenssl = opensslAvailable ? test : test.skip;

async function temporaryFiles(t: ExecutionContext, files: Record<string, string>): Promise<string> {
  const dir = await temporaryDirectory(t, 'pki');
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return dir;
}

// --- certificates -----------------------------------------------------------------------------

test('the CA is a self-signed CA that may sign certificates and CRLs', (t) => {
  const certificate = new X509Certificate(ca.certPem);
  t.true(certificate.ca);
  t.true(verifyIssuedBy(ca.certPem, ca.certPem));
  t.is(describeCertificate(ca.certPem).subjectCommonName, 'meshbox test CA');
  t.true(ca.keyPem.includes('PRIVATE KEY'));
  // It signs for ten years: past 2030, RSA 2048 is no longer accepted for signing.
  t.is(certificate.publicKey.asymmetricKeyDetails?.modulusLength, 3072);
  t.is(new X509Certificate(alice.certPem).publicKey.asymmetricKeyDetails?.modulusLength, 2048);
});

test('a mailbox certificate has the upper-case mailbox id as CN, clientAuth, and is signed by the CA', (t) => {
  const description = describeCertificate(alice.certPem);
  t.is(description.subjectCommonName, 'X26ABC001');
  t.is(description.issuerCommonName, 'meshbox test CA');
  t.is(description.serialNumber, alice.serialNumber);
  t.true(description.notBefore.getTime() < Date.now() - 60_000, 'backdated for clock skew');
  t.true(description.notAfter.getTime() > Date.now() + 365 * 24 * 3600_000);
  const certificate = new X509Certificate(alice.certPem);
  t.false(certificate.ca);
  t.deepEqual(certificate.keyUsage, [CLIENT_AUTH]);
  t.true(certificate.subject.includes('O=Test Trust'));
  t.true(verifyIssuedBy(alice.certPem, ca.certPem));
  t.false(verifyIssuedBy(aliceFromOtherCa.certPem, ca.certPem));
});

test('a server certificate carries its DNS and IP SANs and serverAuth', (t) => {
  const certificate = new X509Certificate(serverCertificate.certPem);
  t.is(certificate.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1');
  t.deepEqual(certificate.keyUsage, [SERVER_AUTH]);
  t.is(certificate.checkHost('localhost'), 'localhost');
  t.is(certificate.checkIP('127.0.0.1'), '127.0.0.1');
  t.throws(() => issueServerCertificate({ ca, commonName: 'nowhere', dnsNames: [], ipAddresses: [] }), {
    message: /at least one DNS name or IP address/,
  });
});

test('serial numbers are 16 random bytes of hex, positive, in the spelling Node reports', (t) => {
  const serials = [alice, bob, serverCertificate].map((issued) => issued.serialNumber);
  t.is(new Set(serials).size, serials.length);
  for (const serial of serials) {
    t.regex(serial, /^[0-7][0-9a-f]{31}$/);
    t.not(serial.slice(0, 2), '00');
    t.is(normalizeSerialNumber(new X509Certificate(alice.certPem).serialNumber), alice.serialNumber);
  }
  t.is(normalizeSerialNumber('00:A1:b2'), 'a1b2');
  t.throws(() => normalizeSerialNumber('xyz'));
});

test('a CA certificate with a key that is not its own is refused', (t) => {
  t.throws(() => issueMailboxCertificate({ ca: { certPem: ca.certPem, keyPem: otherCa.keyPem }, mailboxId: 'X26ABC009' }), {
    message: /does not match/,
  });
  t.throws(() => issueMailboxCertificate({ ca: alice, mailboxId: 'X26ABC009' }), { message: /not a CA/ });
});

test('an expired CA signs nothing: what it signed would be refused everywhere, and end before it began', async (t) => {
  const expiring = createCertificateAuthority({ commonName: 'meshbox expiring CA', validityDays: 1 / 86_400 });
  await new Promise((done) => setTimeout(done, 1100));
  t.throws(() => issueMailboxCertificate({ ca: expiring, mailboxId: 'X26ABC010' }), { message: /^the CA's certificate expired on .*: nothing it signs is valid; make a new CA/ });
  t.throws(() => issueServerCertificate({ ca: expiring, commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: [] }), { message: /expired/ });
});

// --- mutual TLS -------------------------------------------------------------------------------

test('a client with a mailbox certificate from the CA connects, and the server sees its CN', async (t) => {
  const server = await startServer(t);
  t.is(await fetchCommonName(server.port, { client: alice }), 'X26ABC001');
  t.is(await fetchCommonName(server.port, { client: bob }), 'X26ABC002');
});

test('a client certificate from another CA is refused in the handshake', async (t) => {
  const server = await startServer(t);
  await t.throwsAsync(fetchCommonName(server.port, { client: aliceFromOtherCa }));
});

test('a client without a certificate is refused in the handshake', async (t) => {
  const server = await startServer(t);
  await t.throwsAsync(fetchCommonName(server.port));
});

test('the server certificate validates for the host name localhost and for 127.0.0.1', async (t) => {
  const server = await startServer(t);
  t.is(await fetchCommonName(server.port, { client: alice, servername: 'localhost' }), 'X26ABC001');
  // No servername: Node checks the IP it connected to against the IP SANs.
  t.is(await fetchCommonName(server.port, { client: alice }), 'X26ABC001');
  await t.throwsAsync(fetchCommonName(server.port, { client: alice, servername: 'meshbox.example' }), {
    code: 'ERR_TLS_CERT_ALTNAME_INVALID',
  });
  // A client that trusts another CA does not accept our server.
  await t.throwsAsync(fetchCommonName(server.port, { client: alice, servername: 'localhost', trustedCaPem: otherCa.certPem }));
});

withOpenssl('names beyond PrintableString (an en dash, an accent) are written as UTF8String, and OpenSSL reads them', async (t) => {
  const accentedCa = createCertificateAuthority({ commonName: 'Autorité de test' });
  const dashed = issueMailboxCertificate({ ca: accentedCa, mailboxId: 'X26ABC010', organisation: "St Mary's – Paddington" });
  const requested = createCertificateRequest({ commonName: 'x26abc011', organisation: 'Café Health' });
  const signed = signCertificateRequest({ ca: accentedCa, csrPem: requested.csrPem, usage: 'client' });
  const dir = await temporaryFiles(t, { 'ca.pem': accentedCa.certPem, 'dashed.pem': dashed.certPem, 'signed.pem': signed.certPem });
  const subjectOf = (file: string): string =>
    execFileSync('openssl', ['x509', '-in', join(dir, file), '-noout', '-subject', '-issuer', '-nameopt', 'utf8'], { encoding: 'utf8' });
  t.regex(subjectOf('dashed.pem'), /subject=CN=X26ABC010, O=St Mary's – Paddington\nissuer=CN=Autorité de test, O=meshbox/);
  t.regex(subjectOf('signed.pem'), /subject=CN=X26ABC011, O=Café Health\nissuer=CN=Autorité de test/);
  for (const file of ['dashed.pem', 'signed.pem']) {
    t.is(spawnSync('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), join(dir, file)]).status, 0, `${file} chains to the CA`);
  }
  t.true(new X509Certificate(dashed.certPem).subject.includes("O=St Mary's – Paddington"));
});

// --- certificate signing requests -------------------------------------------------------------

test('a client CSR signed by the CA gives a mailbox certificate that connects', async (t) => {
  const request = createCertificateRequest({ commonName: 'x26abc003', organisation: 'Test Trust' });
  t.true(request.csrPem.includes('BEGIN CERTIFICATE REQUEST'));
  const signed = signCertificateRequest({ ca, csrPem: request.csrPem, usage: 'client' });
  const certificate = new X509Certificate(signed.certPem);
  t.deepEqual(certificate.keyUsage, [CLIENT_AUTH]);
  t.is(describeCertificate(signed.certPem).serialNumber, signed.serialNumber);
  const server = await startServer(t);
  t.is(await fetchCommonName(server.port, { client: { certPem: signed.certPem, keyPem: request.keyPem } }), 'X26ABC003');
});

test('a server CSR gets the SANs it asks for, and the resulting server is accepted by clients', async (t) => {
  const request = createCertificateRequest({ commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const signed = signCertificateRequest({ ca, csrPem: request.csrPem, usage: 'server' });
  const certificate = new X509Certificate(signed.certPem);
  t.is(certificate.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1');
  t.deepEqual(certificate.keyUsage, [SERVER_AUTH]);
  const server = await startServer(t, { certificate: { certPem: signed.certPem, keyPem: request.keyPem } });
  t.is(await fetchCommonName(server.port, { client: bob, servername: 'localhost' }), 'X26ABC002');
  // The CA may override what was asked for.
  const overridden = signCertificateRequest({ ca, csrPem: request.csrPem, usage: 'server', dnsNames: ['mesh.example'] });
  t.is(new X509Certificate(overridden.certPem).subjectAltName, 'DNS:mesh.example');
});

test('a server certificate is never written with a name that is no host name or IP address, whoever chose it', (t) => {
  // The request names none, so its CN would be the DNS name.
  const request = createCertificateRequest({ commonName: 'bad host_name!' });
  t.throws(() => signCertificateRequest({ ca, csrPem: request.csrPem, usage: 'server' }), { message: /"bad host_name!" cannot be certified/ });
  t.throws(() => signCertificateRequest({ ca, csrPem: request.csrPem, usage: 'server', ipAddresses: ['999.1.1.1'] }), { message: /"999\.1\.1\.1" cannot be certified/ });
  t.throws(() => issueServerCertificate({ ca, commonName: 'mesh', dnsNames: ['mesh..example'], ipAddresses: [] }), { message: /"mesh\.\.example" cannot be certified/ });
  t.throws(() => createCertificateRequest({ commonName: 'mesh', ipAddresses: ['fe80::1%eth0'] }), { message: /cannot be certified/ });
  const wildcard = signCertificateRequest({ ca, csrPem: request.csrPem, usage: 'server', dnsNames: ['*.mesh.example'], ipAddresses: ['2001:db8::5'] });
  t.is(new X509Certificate(wildcard.certPem).subjectAltName, 'DNS:*.mesh.example, IP Address:2001:DB8:0:0:0:0:0:5');
});

test('a CSR altered after signing is refused', (t) => {
  const request = createCertificateRequest({ commonName: 'X26ABC004' });
  const der = Buffer.from(request.csrPem.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64');
  const at = der.indexOf('X26ABC004');
  t.true(at > 0);
  der.write('X26ABC005', at, 'latin1'); // claim another mailbox, keep the original signature
  const base64Lines = der.toString('base64').replace(/.{64}/g, '$&\n');
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${base64Lines}\n-----END CERTIFICATE REQUEST-----\n`;
  t.throws(() => signCertificateRequest({ ca, csrPem: tampered, usage: 'client' }), { message: /signature is invalid/ });
  t.throws(() => signCertificateRequest({ ca, csrPem: 'not a CSR', usage: 'client' }), {
    message: /unreadable certificate request/,
  });
});

withOpenssl('a CSR made by OpenSSL is accepted; of its subject, only the common name and organisation are certified (the CA checked no email address, unit or UID)', async (t) => {
  const dir = await temporaryFiles(t, {});
  const subject = '/C=GB/O=Elsewhere/OU=Spine/CN=x26abc006/emailAddress=admin@example.org/UID=X26ABC099';
  const files = ['-keyout', join(dir, 'k.pem'), '-out', join(dir, 'r.pem')];
  execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', subject, ...files], { stdio: 'ignore' });
  const signed = signCertificateRequest({ ca, csrPem: await readFile(join(dir, 'r.pem'), 'utf8'), usage: 'client' });
  const certificate = new X509Certificate(signed.certPem);
  t.is(describeCertificate(signed.certPem).subjectCommonName, 'X26ABC006');
  t.is(certificate.subject, 'CN=X26ABC006\nO=Elsewhere');
  const server = signCertificateRequest({ ca, csrPem: await readFile(join(dir, 'r.pem'), 'utf8'), usage: 'server', dnsNames: ['mesh.example'] });
  t.is(new X509Certificate(server.certPem).subject, 'CN=x26abc006\nO=Elsewhere');
});

withOpenssl('a CSR with two common names (its certificate would carry both, and the server refuse it), or with an EC key, is refused saying why', async (t) => {
  const dir = await temporaryFiles(t, {});
  const twoNames = ['-newkey', 'rsa:2048', '-subj', '/CN=X26ABC007/CN=X26ABC008'];
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-subj', '/CN=X26ABC007'];
  for (const [made, refusal] of [[twoNames, /has 2 subject common names: give one/], [ec, /its key is not RSA, and meshbox signs RSA keys only/]] as const) {
    execFileSync('openssl', ['req', '-new', '-nodes', ...made, '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'r.pem')], { stdio: 'ignore' });
    t.throws(() => signCertificateRequest({ ca, csrPem: readFileSync(join(dir, 'r.pem'), 'utf8'), usage: 'client' }), { message: refusal });
  }
});

withOpenssl('a CSR whose RSA exponent is small (3, or 1, which makes the key no secret: anyone holding the certificate can sign as it) is refused', async (t) => {
  const dir = await temporaryFiles(t, {});
  execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-pkeyopt', 'rsa_keygen_pubexp:3', '-out', join(dir, 'k.pem')], { stdio: 'ignore' });
  execFileSync('openssl', ['req', '-new', '-key', join(dir, 'k.pem'), '-subj', '/CN=X26ABC009', '-out', join(dir, 'r.pem')], { stdio: 'ignore' });
  t.throws(() => signCertificateRequest({ ca, csrPem: readFileSync(join(dir, 'r.pem'), 'utf8'), usage: 'client' }), {
    message: 'certificate request key has RSA exponent 3: an odd one from 65537 to 2^256 is required',
  });
  // e = d = 1: the "signature" is the message itself, which verifies; the modulus is a real key's.
  const real = forge.pki.privateKeyFromPem(readFileSync(join(dir, 'k.pem'), 'utf8')) as forge.pki.rsa.PrivateKey;
  const one = forge.jsbn.BigInteger.ONE;
  const request = forge.pki.createCertificationRequest();
  request.publicKey = forge.pki.setRsaPublicKey(real.n, one);
  request.setSubject([{ name: 'commonName', value: 'X26ABC009' }]);
  request.sign(forge.pki.setRsaPrivateKey(real.n, one, one, real.p, real.q, one, one, real.qInv), forge.md.sha256.create());
  t.throws(() => signCertificateRequest({ ca, csrPem: forge.pki.certificationRequestToPem(request), usage: 'client' }), { message: /has RSA exponent 1:/ });
});

// --- revocation -------------------------------------------------------------------------------

test('a server with the CRL refuses a revoked mailbox certificate and still accepts the others', async (t) => {
  const crl = createRevocationList({
    ca,
    revoked: [{ serialNumber: alice.serialNumber, revokedAt: new Date(), reason: 'keyCompromise' }],
  });
  t.true(crl.startsWith('-----BEGIN X509 CRL-----'));
  const server = await startServer(t, { crl });
  await t.throwsAsync(fetchCommonName(server.port, { client: alice }));
  t.is(await fetchCommonName(server.port, { client: bob }), 'X26ABC002');
});

test('a CRL takes serial numbers as Node and OpenSSL print them (upper case, colons)', async (t) => {
  const printed = new X509Certificate(alice.certPem).serialNumber.replace(/(..)(?!$)/g, '$1:');
  const crl = createRevocationList({ ca, revoked: [{ serialNumber: printed, revokedAt: new Date(Date.now() - 86_400_000) }] });
  const server = await startServer(t, { crl });
  await t.throwsAsync(fetchCommonName(server.port, { client: alice }));
  t.is(await fetchCommonName(server.port, { client: bob }), 'X26ABC002');
});

test('an empty CRL revokes nobody', async (t) => {
  const server = await startServer(t, { crl: createRevocationList({ ca, revoked: [] }) });
  t.is(await fetchCommonName(server.port, { client: alice }), 'X26ABC001');
});

test('a CRL past its nextUpdate makes the server refuse every client (so it must be renewed in time)', async (t) => {
  const expired = createRevocationList({ ca, revoked: [], issuedAt: new Date(Date.now() - 10 * 86_400_000), nextUpdateDays: 1 });
  const server = await startServer(t, { crl: expired });
  await t.throwsAsync(fetchCommonName(server.port, { client: bob }));
});

test('a CRL signed by another CA is not taken as ours', async (t) => {
  // The other CA revokes alice's serial; our server must not believe it (nor choke on it).
  const foreign = createRevocationList({ ca: otherCa, revoked: [{ serialNumber: alice.serialNumber, revokedAt: new Date() }] });
  const server = await startServer(t, { crl: [createRevocationList({ ca, revoked: [] }), foreign].join('') });
  t.is(await fetchCommonName(server.port, { client: alice }), 'X26ABC001');
});

test('the refusals are for the expected reasons (OpenSSL verify codes)', async (t) => {
  const revokingAlice = createRevocationList({ ca, revoked: [{ serialNumber: alice.serialNumber, revokedAt: new Date() }] });
  const withCrl = await startServer(t, { crl: revokingAlice, rejectUnauthorized: false });
  t.is(await fetchCommonName(withCrl.port, { client: alice }), 'refused: CERT_REVOKED');
  t.is(await fetchCommonName(withCrl.port, { client: bob }), 'X26ABC002');
  t.is(await fetchCommonName(withCrl.port, { client: aliceFromOtherCa }), 'refused: UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  const expired = createRevocationList({ ca, revoked: [], issuedAt: new Date(Date.now() - 10 * 86_400_000), nextUpdateDays: 1 });
  const withExpiredCrl = await startServer(t, { crl: expired, rejectUnauthorized: false });
  t.is(await fetchCommonName(withExpiredCrl.port, { client: bob }), 'refused: CRL_HAS_EXPIRED');
});

withOpenssl('two CRLs issued within the same second are numbered apart, the later higher (RFC 5280: a CRL number increases with each list)', async (t) => {
  const second = new Date('2030-06-01T12:00:00.100Z');
  const first = createRevocationList({ ca, revoked: [], issuedAt: second });
  const later = createRevocationList({ ca, revoked: [{ serialNumber: alice.serialNumber, revokedAt: second }], issuedAt: new Date(second.getTime() + 500) });
  const dir = await temporaryFiles(t, { 'first.pem': first, 'later.pem': later });
  const numberOf = (file: string) => BigInt(execFileSync('openssl', ['crl', '-in', join(dir, file), '-noout', '-crlnumber'], { encoding: 'utf8' }).trim().replace(/^crlNumber=/, ''));
  t.true(numberOf('later.pem') > numberOf('first.pem'));
});

withOpenssl('OpenSSL parses the CRL, verifies its signature and finds the revoked certificate', async (t) => {
  const crl = createRevocationList({
    ca,
    revoked: [{ serialNumber: alice.serialNumber, revokedAt: new Date('2030-06-01T12:00:00Z'), reason: 'superseded' }],
    crlNumber: 7,
  });
  const files = { 'ca.pem': ca.certPem, 'crl.pem': crl, 'alice.pem': alice.certPem, 'bob.pem': bob.certPem };
  const dir = await temporaryFiles(t, files);
  const text = execFileSync('openssl', ['crl', '-in', join(dir, 'crl.pem'), '-CAfile', join(dir, 'ca.pem'), '-noout', '-text'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.regex(text, /Version 2/);
  t.regex(text, /CRL Number: \s*7/);
  t.regex(text, /Authority Key Identifier/);
  t.true(text.includes(`Serial Number: ${alice.serialNumber.toUpperCase()}`));
  t.regex(text, /Revocation Date: Jun  1 12:00:00 2030 GMT/);
  t.regex(text, /Superseded/);
  const verify = (file: string) =>
    spawnSync('openssl', ['verify', '-crl_check', '-CAfile', join(dir, 'ca.pem'), '-CRLfile', join(dir, 'crl.pem'), join(dir, file)], {
      encoding: 'utf8',
    });
  const aliceResult = verify('alice.pem');
  t.not(aliceResult.status, 0);
  t.regex(aliceResult.stdout + aliceResult.stderr, /certificate revoked/);
  t.is(verify('bob.pem').status, 0);
});

withOpenssl("a CRL leaves out a revoked certificate once its end is further past than the list's lifetime, so that the first list after its end still has it; one whose end is unknown or unreadable stays", async (t) => {
  const issuedAt = new Date('2030-06-01T12:00:00Z');
  const day = 86_400_000;
  const revoked = (serialNumber: string, notAfter: Date | undefined) => ({ serialNumber, revokedAt: new Date(issuedAt.getTime() - 100 * day), notAfter });
  const crl = createRevocationList({
    ca,
    issuedAt,
    nextUpdateDays: 7,
    revoked: [
      revoked('a1', new Date(issuedAt.getTime() - 8 * day)),
      revoked('a2', new Date(issuedAt.getTime() - 6 * day)),
      revoked('a3', new Date(issuedAt.getTime() + day)),
      revoked('a4', undefined),
      revoked('a5', new Date(Number.NaN)),
    ],
  });
  const dir = await temporaryFiles(t, { 'crl.pem': crl });
  const text = execFileSync('openssl', ['crl', '-in', join(dir, 'crl.pem'), '-noout', '-text'], { encoding: 'utf8' });
  t.deepEqual([...text.matchAll(/Serial Number: (\w+)/g)].map((match) => match[1]), ['A2', 'A3', 'A4', 'A5']);
  const none = createRevocationList({ ca, issuedAt, revoked: [revoked('b1', new Date(issuedAt.getTime() - 31 * day))] });
  const emptied = await temporaryFiles(t, { 'crl.pem': none });
  t.regex(execFileSync('openssl', ['crl', '-in', join(emptied, 'crl.pem'), '-noout', '-text'], { encoding: 'utf8' }), /No Revoked Certificates/, 'left out as a list with nothing revoked is');
});
