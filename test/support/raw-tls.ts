import { connect } from 'node:tls';
import type { Endpoint } from './http.ts';
import type { KeyPair } from './harness.ts';

/**
 * Writes raw bytes on a mutual-TLS connection and returns the status of what comes back
 * (0 if the server closed without an answer): for requests no HTTP client would send.
 */
export function rawTlsExchange(endpoint: Endpoint, certificate: KeyPair, request: Buffer): Promise<{ status: number; text: string }> {
  const url = new URL(endpoint.origin);
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: url.hostname,
      port: Number(url.port),
      ca: endpoint.caPem,
      cert: certificate.certPem,
      key: certificate.keyPem,
      servername: 'localhost',
    });
    const parts: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.on('secureConnect', () => socket.end(request));
    socket.on('data', (part: Buffer) => parts.push(part));
    socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? finish() : reject(error)));
    socket.on('end', finish);
    function finish(): void {
      const text = Buffer.concat(parts).toString('latin1');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text });
    }
  });
}
