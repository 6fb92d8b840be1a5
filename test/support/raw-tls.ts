import { once } from 'node:events';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import type { Endpoint } from './http.ts';
import type { KeyPair } from './harness.ts';

/** A mutual-TLS connection to the server as the holder of `certificate`, its handshake begun. */
function connectAs(endpoint: Pick<Endpoint, 'origin' | 'caPem'>, certificate: KeyPair, options: Pick<ConnectionOptions, 'maxVersion' | 'ciphers'> = {}): TLSSocket {
  const url = new URL(endpoint.origin);
  return connect({ host: url.hostname, port: Number(url.port), ca: endpoint.caPem, cert: certificate.certPem, key: certificate.keyPem, servername: 'localhost', ...options });
}

/** A mutual-TLS connection once its handshake is done, nothing sent on it: one the server holds. */
export async function openTlsConnection(endpoint: Pick<Endpoint, 'origin' | 'caPem'>, certificate: KeyPair, options: Pick<ConnectionOptions, 'maxVersion' | 'ciphers'> = {}): Promise<TLSSocket> {
  const socket = connectAs(endpoint, certificate, options);
  try {
    await once(socket, 'secureConnect');
    return socket;
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

/**
 * Writes raw bytes on a mutual-TLS connection and returns the status of what comes back
 * (0 if the server closed without an answer): for requests no HTTP client would send.
 */
export function rawTlsExchange(
  endpoint: Endpoint,
  certificate: KeyPair,
  request: Buffer,
  /** How long to wait for a first byte of answer (a partial request may get none). */
  answerWithinMs = 10_000,
  /**
   * How long a pause in the answer ends it, when the server keeps the connection open. Longer
   * where a second answer follows before the server closes (pipelined requests): a loaded
   * machine may pause between the two.
   */
  quietMs = 300,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const socket = connectAs(endpoint, certificate);
    const parts: Buffer[] = [];
    let settled = false;
    // The socket stays open for writing (a half-close can make the server drop the request), so
    // the answer is complete when the server closes, or when nothing more came for a moment.
    let quiet = setTimeout(finish, answerWithinMs);
    socket.on('secureConnect', () => socket.write(request));
    socket.on('data', (part: Buffer) => {
      parts.push(part);
      clearTimeout(quiet);
      quiet = setTimeout(finish, quietMs);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? finish() : settled || reject(error)));
    socket.on('end', finish);
    socket.on('close', finish);
    function finish(): void {
      if (settled) return;
      settled = true;
      clearTimeout(quiet);
      socket.destroy();
      const text = Buffer.concat(parts).toString('latin1');
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text });
    }
  });
}
