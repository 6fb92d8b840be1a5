import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import forge from 'node-forge';
import { createCertificateAuthority, createRevocationList, describeCertificate, issueServerCertificate } from '../../shared/src/pki/index.ts';
import { fileTemporaryDirectory } from '../../test/support/temporary-directory.ts';
import { ConfigError, loadBackendConfig, loadConfig, suspectedTypos } from '../src/config.ts';

const dir = fileTemporaryDirectory(test, 'config');
const ca = createCertificateAuthority({ commonName: 'config test CA' });
const serverCertificate = issueServerCertificate({ ca, commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: [] });
const otherCa = createCertificateAuthority({ commonName: 'another CA' });
const write = (name: string, text: string): string => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};
write('server.crt', serverCertificate.certPem);
write('server.key', serverCertificate.keyPem);
write('ca.crt', ca.certPem);
const files = {
  MESHBOX_TLS_CERT: join(dir, 'server.crt'),
  MESHBOX_TLS_KEY: join(dir, 'server.key'),
  MESHBOX_TLS_CA: join(dir, 'ca.crt'),
  MESHBOX_SHARED_KEY: 'shared',
  MESHBOX_SECRET_KEY: 'secret',
};

test('defaults give a loopback server on 8443 with embedded Redis and S3', (t) => {
  const config = loadConfig(files);
  t.is(config.host, '127.0.0.1');
  t.is(config.port, 8443);
  t.is(config.redisUrl, undefined);
  t.is(config.s3.endpoint, undefined);
  t.is(config.s3.bucket, 'meshbox');
  t.is(config.tls.cert, serverCertificate.certPem);
  t.is(config.sharedKey, 'shared');
  t.is(config.secretKey, 'secret');
  t.is(config.mailboxCacheMs, 1000);
  t.is(loadConfig({ ...files, MESHBOX_MAILBOX_CACHE_SECONDS: '0' }).mailboxCacheMs, 0);
  t.is(loadConfig({ ...files, MESHBOX_MAILBOX_CACHE_SECONDS: '1.005' }).mailboxCacheMs, 1005);
  t.false(config.redisAutoPipelining);
  t.true(loadConfig({ ...files, MESHBOX_REDIS_AUTO_PIPELINING: 'true' }).redisAutoPipelining);
  t.throws(() => loadConfig({ ...files, MESHBOX_REDIS_AUTO_PIPELINING: 'off' }), { message: /MESHBOX_REDIS_AUTO_PIPELINING/ });
  t.deepEqual(config.redisReplicas, { replicas: 0, timeoutMs: 1000 });
  t.deepEqual(loadConfig({ ...files, MESHBOX_REDIS_WAIT_REPLICAS: '2', MESHBOX_REDIS_WAIT_TIMEOUT_SECONDS: '0.25' }).redisReplicas, { replicas: 2, timeoutMs: 250 });
  t.throws(() => loadConfig({ ...files, MESHBOX_REDIS_WAIT_REPLICAS: '-1' }), { message: /MESHBOX_REDIS_WAIT_REPLICAS/ });
  // A WAIT is silent while it lasts: longer than the silence after which a Redis connection is dropped, every one would fail.
  t.throws(() => loadConfig({ ...files, MESHBOX_REDIS_WAIT_TIMEOUT_SECONDS: '30' }), { message: /MESHBOX_REDIS_WAIT_TIMEOUT_SECONDS: at most 5/ });
  t.is(config.periods.auditRetentionMs, 30 * 86_400_000);
  t.is(loadConfig({ ...files, MESHBOX_AUDIT_RETENTION_SECONDS: '0' }).periods.auditRetentionMs, 0);
});

test('an empty value counts as unset: its default applies, not 0 (a limit would be lifted)', (t) => {
  const config = loadConfig({ ...files, MESHBOX_RATE_LIMIT_PER_SECOND: '', MESHBOX_MAX_TRANSFERS_PER_MAILBOX: ' ', MESHBOX_PORT: '', MESHBOX_AUDIT_RETENTION_SECONDS: '' });
  t.is(config.maxRequestsPerSecond, 500);
  t.is(config.limits.maxTransfersPerMailbox, 16);
  t.is(config.port, 8443);
  t.is(config.periods.auditRetentionMs, 30 * 86_400_000);
  t.is(loadConfig({ ...files, MESHBOX_REDIS_PREFIX: '' }).redisPrefix, '', 'an empty prefix is a prefix: none');
});

test('a period that runs as a timer is at most a day: Node fires a longer one at once, again and again', (t) => {
  for (const variable of ['MESHBOX_CRL_RELOAD_SECONDS', 'MESHBOX_LIFECYCLE_LEASE_SECONDS', 'MESHBOX_IDLE_TIMEOUT_SECONDS', 'MESHBOX_REQUEST_TIMEOUT_SECONDS', 'MESHBOX_HEADERS_TIMEOUT_SECONDS']) {
    t.throws(() => loadConfig({ ...files, [variable]: '3000000' }), { instanceOf: ConfigError, message: new RegExp(`${variable}: at most 86400`) });
  }
  t.is(loadConfig({ ...files, MESHBOX_IDLE_TIMEOUT_SECONDS: '86400' }).clientTimeouts.idleMs, 86_400_000);
  // Under a second, every request would be cut off as it starts.
  for (const variable of ['MESHBOX_IDLE_TIMEOUT_SECONDS', 'MESHBOX_REQUEST_TIMEOUT_SECONDS', 'MESHBOX_HEADERS_TIMEOUT_SECONDS']) {
    t.throws(() => loadConfig({ ...files, [variable]: '0.001' }), { instanceOf: ConfigError, message: new RegExp(`${variable}: at least 1 \\(a second\\)`) });
  }
  t.is(loadConfig({ ...files, MESHBOX_HEADERS_TIMEOUT_SECONDS: '1' }).clientTimeouts.headersMs, 1000);
  // A new message's first check: a minute past the request timeout, and never sooner than twice a worker clock's allowance ahead (5 minutes).
  t.is(loadConfig(files).periods.deliveryCheckMs, 16 * 60_000);
  t.is(loadConfig({ ...files, MESHBOX_REQUEST_TIMEOUT_SECONDS: '60' }).periods.deliveryCheckMs, 10 * 60_000);
  t.is(loadConfig({ ...files, MESHBOX_REQUEST_TIMEOUT_SECONDS: '1800' }).periods.deliveryCheckMs, 31 * 60_000);
  t.is(loadConfig(files).maxConnections, 10_000);
  t.is(loadConfig({ ...files, MESHBOX_MAX_CONNECTIONS: '500' }).maxConnections, 500);
  for (const value of ['0', '1.5', 'many']) t.throws(() => loadConfig({ ...files, MESHBOX_MAX_CONNECTIONS: value }), { instanceOf: ConfigError, message: /MESHBOX_MAX_CONNECTIONS/ });
  t.is(loadConfig(files).maxConnectionsPerClient, 100);
  t.is(loadConfig({ ...files, MESHBOX_MAX_CONNECTIONS_PER_CLIENT: '0' }).maxConnectionsPerClient, 0);
  for (const value of ['-1', '2.5', 'few']) {
    t.throws(() => loadConfig({ ...files, MESHBOX_MAX_CONNECTIONS_PER_CLIENT: value }), { instanceOf: ConfigError, message: /MESHBOX_MAX_CONNECTIONS_PER_CLIENT/ });
  }
  // Nor may the CRL be read again every millisecond: a busy loop.
  t.throws(() => loadConfig({ ...files, MESHBOX_CRL_RELOAD_SECONDS: '0.001' }), { instanceOf: ConfigError, message: /MESHBOX_CRL_RELOAD_SECONDS: at least 0\.1/ });
  t.is(loadConfig({ ...files, MESHBOX_CRL_RELOAD_SECONDS: '0.5' }).crlReloadMs, 500);
  t.is(loadConfig(files).lifecycleLeaseMs, 300_000);
  t.is(loadConfig({ ...files, MESHBOX_LIFECYCLE_LEASE_SECONDS: '60' }).lifecycleLeaseMs, 60_000);
  t.throws(() => loadConfig({ ...files, MESHBOX_LIFECYCLE_LEASE_SECONDS: '5' }), { message: /MESHBOX_LIFECYCLE_LEASE_SECONDS/ });
});

test("a message's periods are at most 100 years: a longer one overflows the schedule's scores, and every send's scheduling fails", (t) => {
  for (const variable of ['MESHBOX_INBOX_EXPIRY_SECONDS', 'MESHBOX_UPLOAD_EXPIRY_SECONDS', 'MESHBOX_PAYLOAD_RETENTION_SECONDS', 'MESHBOX_MESSAGE_RETENTION_SECONDS', 'MESHBOX_AUDIT_RETENTION_SECONDS']) {
    t.throws(() => loadConfig({ ...files, [variable]: '10000000000000' }), { instanceOf: ConfigError, message: new RegExp(`${variable}: at most 3153600000 \\(100 years\\)`) });
  }
  t.is(loadConfig({ ...files, MESHBOX_MESSAGE_RETENTION_SECONDS: '3153600000' }).periods.messageRetentionMs, 3_153_600_000_000);
});

test('a request timeout shorter than the headers timeout is refused by name (Node would not start with it)', (t) => {
  t.throws(() => loadConfig({ ...files, MESHBOX_REQUEST_TIMEOUT_SECONDS: '10' }), {
    instanceOf: ConfigError,
    message: /MESHBOX_HEADERS_TIMEOUT_SECONDS must be at most MESHBOX_REQUEST_TIMEOUT_SECONDS/,
  });
  t.is(loadConfig({ ...files, MESHBOX_REQUEST_TIMEOUT_SECONDS: '10', MESHBOX_HEADERS_TIMEOUT_SECONDS: '5' }).clientTimeouts.requestMs, 10_000);
});

test('Redis takes only redis:// URLs and S3 only http(s)://', (t) => {
  t.throws(() => loadConfig({ ...files, MESHBOX_REDIS_URL: 'https://10.0.0.7:6379', MESHBOX_S3_ENDPOINT: 'https://s3.example.org' }), { message: /MESHBOX_REDIS_URL: a redis/ });
  t.throws(() => loadConfig({ ...files, MESHBOX_REDIS_URL: 'redis://10.0.0.7:6379', MESHBOX_S3_ENDPOINT: 'redis://10.0.0.7:6379' }), { message: /MESHBOX_S3_ENDPOINT: an http:\/\/ or https:\/\/ URL/ });
  // No host to reach, or a path that is no database number (ioredis would send SELECT NaN at start).
  for (const url of ['redis://', 'redis:host', 'redis://10.0.0.7:6379/abc', 'redis://10.0.0.7:6379/0/1', 'redis://10.0.0.7:0']) {
    t.throws(() => loadConfig({ ...files, MESHBOX_REDIS_URL: url, MESHBOX_S3_ENDPOINT: 'https://s3.example.org' }), { message: /MESHBOX_REDIS_URL: a redis:\/\/ or rediss:\/\/ URL with a host/ }, url);
  }
  for (const url of ['redis://10.0.0.7:6379', 'redis://10.0.0.7:6379/', 'rediss://:secret@redis.example.org:6380/2']) {
    t.is(loadConfig({ ...files, MESHBOX_REDIS_URL: url, MESHBOX_S3_ENDPOINT: 'https://s3.example.org' }).redisUrl, url);
  }
  const redis = { MESHBOX_REDIS_URL: 'redis://10.0.0.7:6379' };
  for (const endpoint of ['http://10.0.0.8:0', 'https://s3.example.org/?versionId=1', 'https://s3.example.org/#x']) {
    t.throws(() => loadConfig({ ...files, ...redis, MESHBOX_S3_ENDPOINT: endpoint }), { message: /MESHBOX_S3_ENDPOINT: an http:\/\/ or https:\/\/ URL with no port 0, query or fragment/ }, endpoint);
  }
  // A region is a word: one with spaces passed here, and failed only at the first request, not naming the setting.
  const endpoint = { ...redis, MESHBOX_S3_ENDPOINT: 'https://s3.example.org' };
  t.throws(() => loadConfig({ ...files, ...endpoint, MESHBOX_S3_REGION: 'eu west 2' }), { message: /MESHBOX_S3_REGION: a region name of letters, digits, - and _/ });
  for (const region of ['eu-west-2', 'default', 'zone_group1']) t.is(loadConfig({ ...files, ...endpoint, MESHBOX_S3_REGION: region }).s3.region, region);
});

test('TLS files that are not what they should be are named with the reason, all at once', (t) => {
  const problems = t.throws(
    () =>
      loadConfig({
        ...files,
        MESHBOX_TLS_KEY: write('other.key', otherCa.keyPem),
        MESHBOX_TLS_CA: write('key-as-ca.pem', otherCa.keyPem),
      }),
    { instanceOf: ConfigError },
  )?.message ?? '';
  t.regex(problems, /MESHBOX_TLS_KEY \(.*other\.key\): .*key values mismatch/);
  t.regex(problems, /MESHBOX_TLS_CA \(.*key-as-ca\.pem\): no certificate in it/);
  t.throws(() => loadConfig({ ...files, MESHBOX_TLS_CERT: write('not-pem.crt', 'hello') }), { message: /MESHBOX_TLS_CERT \(.*not-pem\.crt\): / });
  // A slip of a path: no client certificate would verify against it, and the server would refuse every client.
  t.throws(() => loadConfig({ ...files, MESHBOX_TLS_CA: join(dir, 'server.crt') }), {
    message: /MESHBOX_TLS_CA \(.*server\.crt\): no CA certificate in it \(CN=localhost is not one\); give the CA that issues the client certificates/,
  });
  t.notThrows(() => loadConfig({ ...files, MESHBOX_TLS_CA: write('bundle.crt', `${otherCa.certPem}${ca.certPem}`) }), 'a bundle of CAs');
  t.notThrows(() => loadConfig({ ...files, MESHBOX_TLS_CA: write('v1-root.crt', selfSignedV1Root()) }), 'an X.509 v1 root, which has no basicConstraints: OpenSSL trusts it');
});

/** A self-signed root as old CAs made them: X.509 v1, with no extensions (so none saying it is a CA). */
function selfSignedV1Root(): string {
  const keys = forge.pki.rsa.generateKeyPair(2048);
  const certificate = forge.pki.createCertificate();
  certificate.version = 0;
  certificate.publicKey = keys.publicKey;
  certificate.serialNumber = '01';
  certificate.validity.notBefore = new Date(Date.now() - 60_000);
  certificate.validity.notAfter = new Date(Date.now() + 86_400_000);
  const name = [{ name: 'commonName', value: 'v1 root' }];
  certificate.setSubject(name);
  certificate.setIssuer(name);
  certificate.sign(keys.privateKey, forge.md.sha256.create());
  return forge.pki.certificateToPem(certificate);
}

test('a CRL the server could not use stops it at start, saying why; a good one is loaded', (t) => {
  const good = write('crl.pem', createRevocationList({ ca, revoked: [] }));
  t.regex(loadConfig({ ...files, MESHBOX_TLS_CRL: good }).tls.crl ?? '', /BEGIN X509 CRL/);
  const refusal = (crl: string) => t.throws(() => loadConfig({ ...files, MESHBOX_TLS_CRL: write('bad-crl.pem', crl) }), { instanceOf: ConfigError })?.message ?? '';
  t.regex(refusal(''), /MESHBOX_TLS_CRL \(.*bad-crl\.pem\): no X509 CRL in it/);
  const whole = createRevocationList({ ca, revoked: [] });
  t.regex(refusal(whole.slice(0, whole.length / 2) + '\n-----END X509 CRL-----\n'), /cannot be read as a CRL/);
  t.regex(refusal(createRevocationList({ ca: otherCa, revoked: [] })), /not signed by the CA the server trusts/);
  const stale = createRevocationList({ ca, revoked: [], issuedAt: new Date(Date.now() - 3 * 86_400_000), nextUpdateDays: 1 });
  t.regex(refusal(stale), /was due to be replaced at .*OpenSSL would refuse every client/);
  const early = createRevocationList({ ca, revoked: [], issuedAt: new Date(Date.now() + 86_400_000) });
  t.regex(refusal(early), /in the future \(its thisUpdate\)/);
});

test('a TLS session-ticket secret is read as bytes from its file (a short, empty or missing one stops the server, saying why); sessions last 900 s unless set', (t) => {
  const secret = Buffer.from(Array.from({ length: 48 }, (_, i) => (i * 37) % 256));
  writeFileSync(join(dir, 'ticket.key'), secret);
  t.deepEqual(loadConfig({ ...files, MESHBOX_TLS_TICKET_KEY_FILE: join(dir, 'ticket.key') }).tls.ticketSecret, secret);
  t.is(loadConfig(files).tls.ticketSecret, undefined);
  t.is(loadConfig(files).tls.sessionSeconds, 900);
  t.is(loadConfig({ ...files, MESHBOX_TLS_SESSION_SECONDS: '3600' }).tls.sessionSeconds, 3600);
  t.regex(t.throws(() => loadConfig({ ...files, MESHBOX_TLS_SESSION_SECONDS: '0.5' }))?.message ?? '', /MESHBOX_TLS_SESSION_SECONDS/);
  const refusal = (path: string) => t.throws(() => loadConfig({ ...files, MESHBOX_TLS_TICKET_KEY_FILE: path }), { instanceOf: ConfigError })?.message ?? '';
  t.regex(refusal(write('short.key', 'x'.repeat(31))), /MESHBOX_TLS_TICKET_KEY_FILE \(.*short\.key\): it holds 31 bytes; it needs at least 32 random ones \(openssl rand 48 > file\)/);
  t.regex(refusal(write('empty.key', '')), /it holds 0 bytes/);
  t.regex(refusal(join(dir, 'ca.crt')), /MESHBOX_TLS_TICKET_KEY_FILE \(.*ca\.crt\): it is a PEM file \(a certificate or key\?\), not random bytes/);
  t.regex(refusal(join(dir, 'absent.key')), /MESHBOX_TLS_TICKET_KEY_FILE \(.*absent\.key\): cannot read it \(ENOENT\)/);
});

test("an expired server certificate stops the server at start, saying so; a good one's expiry is in the configuration", (t) => {
  t.is(loadConfig(files).certificateNotAfter.getTime(), describeCertificate(serverCertificate.certPem).notAfter.getTime());
  // Valid for a moment: X.509 dates are whole seconds, so its end is already past.
  const expired = issueServerCertificate({ ca, commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: [], validityDays: 1e-9 });
  const error = t.throws(() => loadConfig({ ...files, MESHBOX_TLS_CERT: write('expired.crt', expired.certPem), MESHBOX_TLS_KEY: write('expired.key', expired.keyPem) }), {
    instanceOf: ConfigError,
  });
  t.regex(error?.message ?? '', /MESHBOX_TLS_CERT \(.*expired\.crt\): it expired at \S+, so every client refuses it: issue a new one \(meshbox admin cert server --force, or from your CA\)/);
  // A worker serves only health and metrics over it: its lifecycle work goes on (main.ts warns).
  const worker = loadConfig({ ...files, MESHBOX_ROLE: 'worker', MESHBOX_TLS_CERT: join(dir, 'expired.crt'), MESHBOX_TLS_KEY: join(dir, 'expired.key') });
  t.true(worker.certificateNotAfter <= new Date());
});

test('Redis and S3 are set together or not at all: with one unset, the other would be a development server', (t) => {
  const onlyRedis = t.throws(() => loadConfig({ ...files, MESHBOX_REDIS_URL: 'redis://10.0.0.7:6379' }), { instanceOf: ConfigError });
  t.regex(onlyRedis?.message ?? '', /MESHBOX_S3_ENDPOINT: not set, though MESHBOX_REDIS_URL is: set both \(for AWS S3, MESHBOX_S3_ENDPOINT=https:\/\/s3\.<region>\.amazonaws\.com/);
  const onlyS3 = t.throws(() => loadConfig({ ...files, MESHBOX_S3_ENDPOINT: 'https://s3.example.org' }), { instanceOf: ConfigError });
  t.regex(onlyS3?.message ?? '', /MESHBOX_REDIS_URL: not set, though MESHBOX_S3_ENDPOINT is/);
  // The admin commands need Redis alone.
  t.is(loadBackendConfig({ MESHBOX_SECRET_KEY: 'secret', MESHBOX_REDIS_URL: 'redis://10.0.0.7:6379' }).redisUrl, 'redis://10.0.0.7:6379');
});

test('explicit Redis and S3 settings are used', (t) => {
  const config = loadConfig({
    ...files,
    MESHBOX_PORT: '9443',
    MESHBOX_REDIS_URL: 'redis://10.0.0.7:6379',
    MESHBOX_S3_ENDPOINT: 'https://s3.example.org',
    MESHBOX_S3_BUCKET: 'mesh-payloads',
    MESHBOX_S3_ACCESS_KEY_ID: 'id',
    MESHBOX_S3_SECRET_ACCESS_KEY: 'secret',
  });
  t.is(config.port, 9443);
  t.is(config.redisUrl, 'redis://10.0.0.7:6379');
  t.deepEqual(config.s3.credentials, { accessKeyId: 'id', secretAccessKey: 'secret' });
});

test('every bad value is named in one clear error', (t) => {
  const error = t.throws(
    () =>
      loadConfig({
        ...files,
        MESHBOX_PORT: '70000',
        MESHBOX_REDIS_URL: 'not a url',
        MESHBOX_S3_BUCKET: 'Bad_Bucket',
        MESHBOX_LOG_LEVEL: 'loud',
        MESHBOX_MAILBOX_CACHE_SECONDS: '-1',
      }),
    { instanceOf: ConfigError },
  );
  for (const variable of ['MESHBOX_PORT', 'MESHBOX_REDIS_URL', 'MESHBOX_S3_BUCKET', 'MESHBOX_LOG_LEVEL', 'MESHBOX_MAILBOX_CACHE_SECONDS']) {
    t.true(error?.message.includes(variable), variable);
  }
});

test('an unreadable TLS file or shared key file says which variable and how to fix it', (t) => {
  const noCert = t.throws(() => loadConfig({ ...files, MESHBOX_TLS_CERT: join(dir, 'missing.crt') }), { instanceOf: ConfigError });
  t.regex(noCert?.message ?? '', /MESHBOX_TLS_CERT: cannot read .*missing\.crt.*npm run setup/);
  const noKey = t.throws(
    () => loadConfig({ ...files, MESHBOX_SHARED_KEY: undefined, MESHBOX_SHARED_KEY_FILE: join(dir, 'nope') }),
    { instanceOf: ConfigError },
  );
  t.regex(noKey?.message ?? '', /MESHBOX_SHARED_KEY_FILE/);
});

test('the server secret comes from MESHBOX_SECRET_KEY or its file, with a clear error when neither is there', (t) => {
  writeFileSync(join(dir, 'secret-key'), 'from-file\n');
  t.is(loadConfig({ ...files, MESHBOX_SECRET_KEY: undefined, MESHBOX_SECRET_KEY_FILE: join(dir, 'secret-key') }).secretKey, 'from-file');
  const missing = t.throws(() => loadConfig({ ...files, MESHBOX_SECRET_KEY: undefined, MESHBOX_SECRET_KEY_FILE: join(dir, 'none') }), {
    instanceOf: ConfigError,
  });
  t.regex(missing?.message ?? '', /MESHBOX_SECRET_KEY_FILE: cannot read/);
});

test('an empty key file is refused, naming it: an empty secret key would encrypt every password under nothing', (t) => {
  writeFileSync(join(dir, 'empty-key'), '\n');
  const secret = t.throws(() => loadConfig({ ...files, MESHBOX_SECRET_KEY: undefined, MESHBOX_SECRET_KEY_FILE: join(dir, 'empty-key') }), { instanceOf: ConfigError });
  t.regex(secret?.message ?? '', /MESHBOX_SECRET_KEY_FILE: .*empty-key is empty/);
  const shared = t.throws(() => loadConfig({ ...files, MESHBOX_SHARED_KEY: undefined, MESHBOX_SHARED_KEY_FILE: join(dir, 'empty-key') }), { instanceOf: ConfigError });
  t.regex(shared?.message ?? '', /MESHBOX_SHARED_KEY_FILE: .*empty-key is empty/);
});

test('S3 access key id and secret go together', (t) => {
  t.throws(() => loadBackendConfig({ MESHBOX_S3_ACCESS_KEY_ID: 'only-id' }), { message: /go together/ });
});

const backend = (environment: NodeJS.ProcessEnv) => loadBackendConfig({ MESHBOX_SECRET_KEY: 'secret', ...environment });

test('a Redis Cluster is named by its seed nodes; several URLs without cluster mode, or cluster mode without URLs, are refused', (t) => {
  const seeds = 'redis://10.0.0.7:7000, redis://10.0.0.8:7000';
  const cluster = backend({ MESHBOX_REDIS_URL: seeds, MESHBOX_REDIS_CLUSTER: 'true' });
  t.true(cluster.redisCluster);
  t.is(cluster.redisUrl, seeds);
  t.false(backend({ MESHBOX_REDIS_URL: 'redis://10.0.0.7:6379' }).redisCluster);
  t.throws(() => backend({ MESHBOX_REDIS_URL: seeds }), { message: /MESHBOX_REDIS_CLUSTER=true/ });
  t.throws(() => backend({ MESHBOX_REDIS_URL: 'redis://10.0.0.7:7000/3', MESHBOX_REDIS_CLUSTER: 'true' }), { message: /a Redis Cluster has only database 0/ });
  t.true(backend({ MESHBOX_REDIS_URL: 'redis://10.0.0.7:7000/0', MESHBOX_REDIS_CLUSTER: 'true' }).redisCluster);
  t.throws(() => backend({ MESHBOX_REDIS_CLUSTER: 'true' }), { message: /needs MESHBOX_REDIS_URL/ });
  t.throws(() => backend({ MESHBOX_REDIS_URL: 'redis://10.0.0.7:7000,http//x', MESHBOX_REDIS_CLUSTER: 'true' }), {
    message: /MESHBOX_REDIS_URL/,
  });
  t.throws(() => backend({ MESHBOX_REDIS_CLUSTER: 'yes' }), { message: /MESHBOX_REDIS_CLUSTER/ });
});

test('a number that is none is refused saying what is needed and what was given, not how it was coerced', (t) => {
  t.throws(() => loadConfig({ MESHBOX_PORT: 'abc', MESHBOX_MAX_CHUNKS: '1.5', MESHBOX_MAX_MESSAGE_BYTES: '1e400' }), {
    message:
      'invalid configuration:\n  MESHBOX_PORT: a number is needed, not "abc"\n  MESHBOX_MAX_CHUNKS: a whole number is needed, not "1.5"\n' +
      '  MESHBOX_MAX_MESSAGE_BYTES: a finite number is needed, not "1e400"',
  });
});

test('a number is written in decimal digits (a fraction allowed where the setting takes one): what JavaScript also reads as one (hexadecimal, an exponent) is more likely a slip, and is refused', (t) => {
  t.throws(() => loadConfig({ ...files, MESHBOX_PORT: '0x20FB', MESHBOX_MAX_CHUNKS: ' 1e3 ' }), {
    message: 'invalid configuration:\n  MESHBOX_PORT: a number in decimal digits is needed, not "0x20FB"\n  MESHBOX_MAX_CHUNKS: a number in decimal digits is needed, not " 1e3 "',
  });
  t.is(loadConfig({ ...files, MESHBOX_PORT: ' 8443 ', MESHBOX_MAILBOX_CACHE_SECONDS: '0.5' }).port, 8443);
});

test('a Redis prefix may not carry a hash tag: it would put every key in one cluster slot', (t) => {
  t.throws(() => backend({ MESHBOX_REDIS_PREFIX: '{meshbox}:' }), { message: /MESHBOX_REDIS_PREFIX/ });
  t.is(backend({ MESHBOX_REDIS_PREFIX: 'nhs.mesh:' }).redisPrefix, 'nhs.mesh:');
});

test('a MESHBOX_ variable a letter or two from a setting is taken for a typo of it; the CLI\'s own are not', (t) => {
  t.deepEqual(suspectedTypos({ MESHBOX_S3_ENPOINT: 'https://s3.example', MESHBOX_REDIS_ULR: 'redis://x', MESHBOX_URL: 'https://mesh', MESHBOX_PROFILE: 'p.json', MESHBOX_CERT: 'c.crt', MESHBOX_KEY: 'k.key', MESHBOX_CA: 'ca.crt', MESHBOX_TIMEOUT: '60', MESHBOX_MAILBOX: 'X', MESHBOX_PASSWORD: 'p', MESHBOX_PKI_DIR: 'certs', MESHBOX_PORT: '1', MESHBOX_PROT: '2' }), [
    { variable: 'MESHBOX_S3_ENPOINT', meant: 'MESHBOX_S3_ENDPOINT' },
    { variable: 'MESHBOX_REDIS_ULR', meant: 'MESHBOX_REDIS_URL' },
    // Two letters swapped: one slip, even in a short name.
    { variable: 'MESHBOX_PROT', meant: 'MESHBOX_PORT' },
  ]);
});
