import type { TLSSocket } from 'node:tls';
import test from 'ava';
import { handshakeFailureReporter } from '../src/https-server.ts';
import { Metrics } from '../src/metrics.ts';
import { capturedLogger } from './support/captured-log.ts';

const LOG_INTERVAL_MS = 300;

function refusedSocket(authorizationError: string | undefined): TLSSocket {
  return { authorizationError } as unknown as TLSSocket;
}

/** Noted as the connection opened: a refused socket no longer knows it (see the revocation test, for a real one). */
const CLIENT = '192.0.2.7';

const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });

test('refused handshakes are logged once per reason per interval, then how many more came meanwhile; probes are only counted', async (t) => {
  const { logger, lines } = capturedLogger();
  const metrics = new Metrics();
  const report = handshakeFailureReporter(logger, metrics, LOG_INTERVAL_MS);

  for (let i = 0; i < 3; i++) report(reset, refusedSocket('CERT_REVOKED'), CLIENT);
  report(reset, refusedSocket('UNABLE_TO_GET_ISSUER_CERT'), CLIENT);
  report(reset, refusedSocket(undefined), CLIENT);
  await new Promise((done) => setImmediate(done));
  t.deepEqual(
    lines.map(({ msg, reason, client }) => ({ msg, reason, client })),
    [
      { msg: 'TLS handshake refused', reason: 'CERT_REVOKED', client: '192.0.2.7' },
      { msg: 'TLS handshake refused', reason: 'UNABLE_TO_GET_ISSUER_CERT', client: '192.0.2.7' },
    ],
  );

  await new Promise((done) => setTimeout(done, LOG_INTERVAL_MS * 2));
  // Only the reason that repeated is summed up, and nothing is lost for want of a next refusal.
  t.is(lines.length, 3);
  t.like(lines[2], { reason: 'CERT_REVOKED', repeats: 2, msg: 'TLS handshake refused 2 more times for this reason' });

  // A new interval: the next refusal is logged at once again.
  report(reset, refusedSocket('CERT_REVOKED'), CLIENT);
  await new Promise((done) => setImmediate(done));
  t.like(lines[3], { reason: 'CERT_REVOKED', msg: 'TLS handshake refused' });

  const counted = await metrics.registry.getSingleMetricAsString('meshbox_tls_handshake_failures_total');
  t.regex(counted, /reason="CERT_REVOKED"} 4/);
  t.regex(counted, /reason="UNABLE_TO_GET_ISSUER_CERT"} 1/);
  t.regex(counted, /reason="ECONNRESET"} 1/);
});
