import { readFile } from 'node:fs/promises';
import { Agent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { Redis } from 'ioredis';
import { CertificateStore } from '../../server/src/store/certificates.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import { describeCertificate, issueMailboxCertificate } from '../../shared/src/pki/index.ts';
import { mailboxRequest, rawRequest } from '../support/http.ts';
import { startTestServer } from '../support/harness.ts';
import { buildAuthorizationHeader } from '../../shared/src/protocol/index.ts';
import { startServerProcess } from '../support/server-process.ts';
import { redatedCertificate } from '../support/redated-certificate.ts';

/** The server's log lines (JSON) that warn of an expiring client certificate. */
function expiryWarnings(output: string): { certificate: { commonName: string; serialNumber: string; notAfter: string }; daysLeft: number }[] {
  return output
    .split('\n')
    .filter((line) => line.includes('"daysLeft"') && line.includes('client certificate'))
    .map((line) => JSON.parse(line));
}

test("a client certificate near its end is warned about in the log, once a day however often it connects, and its date recorded where the records have none; the server's own certificate's expiry is a metric", async (t) => {
  const server = await startServerProcess({ MESHBOX_LOG_LEVEL: 'warn' });
  try {
    const mailbox = await server.createMailbox();
    const inbox = { path: `/messageexchange/${mailbox.id}/inbox` };
    // Its own certificate, good for two years and more: nothing to say.
    t.is((await mailboxRequest(server, mailbox, inbox)).status, 200);
    const soon = issueMailboxCertificate({ ca: server.deployment.ca, mailboxId: mailbox.id, validityDays: 10 });
    const renewing = { ...mailbox, certPem: soon.certPem, keyPem: soon.keyPem };
    for (let request = 0; request < 3; request++) t.is((await mailboxRequest(server, renewing, inbox)).status, 200);

    // Bounded waiting for the log line, which comes from another process.
    for (let attempt = 0; attempt < 100 && expiryWarnings(server.output()).length === 0; attempt++) await sleep(100);
    const soonSerial = describeCertificate(soon.certPem).serialNumber;
    const warnings = expiryWarnings(server.output());
    t.is(warnings.length, 1, server.output());
    t.like(warnings[0], { certificate: { commonName: mailbox.id, notAfter: describeCertificate(soon.certPem).notAfter.toISOString() }, daysLeft: 10 });
    t.is(warnings[0]?.certificate.serialNumber.toLowerCase(), soonSerial);

    // A certificate the records have no date for (issued before dates were kept, or elsewhere) gets its date once seen.
    const redis = new Redis(server.deployment.redis.redisUrl);
    try {
      const expiry = () => redis.hget(redisKeys(server.deployment.prefix).certificateExpiry, soonSerial);
      for (let attempt = 0; attempt < 100 && (await expiry()) === null; attempt++) await sleep(100);
      t.is(await expiry(), String(describeCertificate(soon.certPem).notAfter.getTime()));

      // A revoked one is refused, and neither warned about nor dated: its end no longer matters.
      const revoked = issueMailboxCertificate({ ca: server.deployment.ca, mailboxId: mailbox.id, validityDays: 5 });
      const revokedSerial = describeCertificate(revoked.certPem).serialNumber;
      t.true(await new CertificateStore(redis, redisKeys(server.deployment.prefix)).revoke(revokedSerial, new Date()));
      t.is((await mailboxRequest(server, { ...mailbox, certPem: revoked.certPem, keyPem: revoked.keyPem }, inbox)).status, 403);
      // Dates are recorded off the request's path, in the order the requests came: once a later
      // certificate's is there, so would the revoked one's be.
      const later = issueMailboxCertificate({ ca: server.deployment.ca, mailboxId: mailbox.id, validityDays: 7 });
      const laterSerial = describeCertificate(later.certPem).serialNumber;
      t.is((await mailboxRequest(server, { ...mailbox, certPem: later.certPem, keyPem: later.keyPem }, inbox)).status, 200);
      const dated = (serial: string) => redis.hget(redisKeys(server.deployment.prefix).certificateExpiry, serial);
      for (let attempt = 0; attempt < 100 && (await dated(laterSerial)) === null; attempt++) await sleep(100);
      t.not(await dated(laterSerial), null);
      t.is(await dated(revokedSerial), null);
      // The log line may reach the process's output after the record reaches Redis.
      for (let attempt = 0; attempt < 100 && expiryWarnings(server.output()).length < 2; attempt++) await sleep(100);
      t.deepEqual(
        expiryWarnings(server.output()).map((warning) => warning.certificate.serialNumber.toLowerCase()),
        [soonSerial, laterSerial],
      );
    } finally {
      redis.disconnect();
    }

    const metrics = (await mailboxRequest(server, mailbox, { path: '/metrics' })).body.toString();
    const serverNotAfter = describeCertificate(await readFile(join(server.pkiDir, 'server.crt'), 'utf8')).notAfter;
    t.regex(metrics, new RegExp(`^meshbox_tls_certificate_expiry_timestamp_seconds ${serverNotAfter.getTime() / 1000}$`, 'm'));
  } finally {
    await server.stop();
  }
});

test('a certificate used only for health and metrics (a monitoring system\'s) is warned about and dated too, unless revoked', async (t) => {
  const server = await startServerProcess({ MESHBOX_LOG_LEVEL: 'warn' });
  const redis = new Redis(server.deployment.redis.redisUrl);
  try {
    // A client certificate whose name is no mailbox: /healthz, /readyz and /metrics only.
    const monitoring = issueMailboxCertificate({ ca: server.deployment.ca, mailboxId: 'MONITOR9', validityDays: 10 });
    const serial = describeCertificate(monitoring.certPem).serialNumber;
    t.is((await rawRequest(server, { path: '/healthz', clientCertificate: monitoring })).status, 200);
    t.is((await rawRequest(server, { path: '/metrics', clientCertificate: monitoring })).status, 200);
    for (let attempt = 0; attempt < 100 && expiryWarnings(server.output()).length === 0; attempt++) await sleep(100);
    t.deepEqual(
      expiryWarnings(server.output()).map((warning) => [warning.certificate.commonName, warning.daysLeft]),
      [['MONITOR9', 10]],
      server.output(),
    );
    const expiry = (of: string) => redis.hget(redisKeys(server.deployment.prefix).certificateExpiry, of);
    for (let attempt = 0; attempt < 100 && (await expiry(serial)) === null; attempt++) await sleep(100);
    t.is(await expiry(serial), String(describeCertificate(monitoring.certPem).notAfter.getTime()));

    // A revoked one still gets its health answer (no revocation check there), but is neither warned about nor dated.
    const revoked = issueMailboxCertificate({ ca: server.deployment.ca, mailboxId: 'MONITOR8', validityDays: 5 });
    const revokedSerial = describeCertificate(revoked.certPem).serialNumber;
    t.true(await new CertificateStore(redis, redisKeys(server.deployment.prefix)).revoke(revokedSerial, new Date()));
    t.is((await rawRequest(server, { path: '/healthz', clientCertificate: revoked })).status, 200);
    // Its revocation is asked, and a date recorded, in the order the requests came: once a later certificate's is there, so would its be.
    const later = issueMailboxCertificate({ ca: server.deployment.ca, mailboxId: 'MONITOR7', validityDays: 7 });
    const laterSerial = describeCertificate(later.certPem).serialNumber;
    t.is((await rawRequest(server, { path: '/healthz', clientCertificate: later })).status, 200);
    for (let attempt = 0; attempt < 100 && (await expiry(laterSerial)) === null; attempt++) await sleep(100);
    t.not(await expiry(laterSerial), null);
    t.is(await expiry(revokedSerial), null);
    // The log line may reach the process's output after the record reaches Redis.
    for (let attempt = 0; attempt < 100 && expiryWarnings(server.output()).length < 2; attempt++) await sleep(100);
    t.deepEqual(expiryWarnings(server.output()).map((warning) => warning.certificate.commonName), ['MONITOR9', 'MONITOR7']);
  } finally {
    redis.disconnect();
    await server.stop();
  }
});

test('a client certificate that expires while its kept-alive connection is open is refused on that connection (403, closed), not served for as long as it polls: a mailbox route, and a health route (a scraper)', async (t) => {
  const server = await startTestServer();
  t.teardown(() => server.close());
  const mailbox = await server.createMailbox();
  // A certificate of ten seconds, for the mailbox: long enough for both first polls on a loaded
  // machine (one made after its end fails the handshake, which the client sees as a hang-up).
  const shortLived = issueMailboxCertificate({ ca: server.ca, mailboxId: mailbox.id, validityDays: 10 / 86_400 });
  const keptAlive = () => new Agent({ keepAlive: true, maxSockets: 1, ca: server.ca.certPem, cert: shortLived.certPem, key: shortLived.keyPem });
  const [agent, scraper] = [keptAlive(), keptAlive()];
  t.teardown(() => [agent, scraper].forEach((each) => each.destroy()));
  const poll = (path = `/messageexchange/${mailbox.id}/count`, by = agent) =>
    new Promise<{ status: number; connection: string | undefined; socket: unknown }>((resolve, reject) => {
      const request = httpsRequest(new URL(path, server.origin), {
        agent: by,
        headers: { accept: 'application/vnd.mesh.v2+json', authorization: buildAuthorizationHeader({ mailboxId: mailbox.id, password: mailbox.password, sharedKey: server.sharedKey }) },
      });
      request.on('error', reject);
      request.on('response', (response) => {
        response.resume();
        response.on('end', () => resolve({ status: response.statusCode ?? 0, connection: response.headers.connection, socket: request.socket }));
      });
      request.end();
    });
  const before = await poll();
  t.is(before.status, 200);
  const scrapedBefore = await poll('/metrics', scraper);
  t.is(scrapedBefore.status, 200);
  await sleep(Math.max(0, describeCertificate(shortLived.certPem).notAfter.getTime() - Date.now()) + 1_000);
  const after = await poll();
  t.is(after.socket, before.socket, 'on the connection opened while it was valid');
  t.is(after.status, 403);
  t.is(after.connection, 'close');
  const scrapedAfter = await poll('/metrics', scraper);
  t.is(scrapedAfter.socket, scrapedBefore.socket);
  t.is(scrapedAfter.status, 403);
  t.is(scrapedAfter.connection, 'close');
});

test('a client certificate past its end fails the TLS handshake, which the server logs and counts: no request of it is answered, health routes included', async (t) => {
  const server = await startServerProcess({ MESHBOX_LOG_LEVEL: 'info' });
  try {
    const mailbox = await server.createMailbox();
    const hour = 3_600_000;
    const redated = (notBefore: number, notAfter: number) =>
      redatedCertificate(server.deployment.ca, mailbox.certPem, { notBefore: new Date(Date.now() + notBefore), notAfter: new Date(Date.now() + notAfter) });
    // The same key and name, in force: what the handshake refuses below is the date alone.
    t.is((await mailboxRequest(server, { ...mailbox, certPem: redated(-hour, hour) }, { path: `/messageexchange/${mailbox.id}/inbox` })).status, 200);
    const expired = { ...mailbox, certPem: redated(-100 * hour, -hour) };
    for (const path of [`/messageexchange/${mailbox.id}/inbox`, '/healthz']) {
      await t.throwsAsync(mailboxRequest(server, expired, { path }), undefined, path);
    }
    for (let attempt = 0; attempt < 100 && !server.output().includes('"reason":"CERT_HAS_EXPIRED"'); attempt++) await sleep(100);
    t.regex(server.output(), /"reason":"CERT_HAS_EXPIRED","client":"[0-9a-f.:]+".*"msg":"TLS handshake refused"/);
    t.regex((await mailboxRequest(server, mailbox, { path: '/metrics' })).body.toString(), /meshbox_tls_handshake_failures_total\{reason="CERT_HAS_EXPIRED"\} 2/);
  } finally {
    await server.stop();
  }
});
