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

/**
 * Sends `requests` on one mutual-TLS connection as a client that reads nothing before it has
 * written everything (Python's requests, which NHS's mesh-client uses): each whole request
 * written, then its answer read. Resolves with the answers read, in order, and the error that
 * stopped a write, if one did (the server closed under the upload).
 */
export async function sendWholeThenRead(
  endpoint: Pick<Endpoint, 'origin' | 'caPem'>,
  certificate: KeyPair,
  requests: readonly Buffer[],
): Promise<{ readonly answers: readonly string[]; readonly writeError: string | undefined }> {
  const socket = await openTlsConnection(endpoint, certificate);
  const answers: string[] = [];
  let received = '';
  let closed = false;
  socket.on('data', (part: Buffer) => (received += part.toString('latin1')));
  socket.on('close', () => (closed = true));
  socket.on('error', () => {});
  try {
    for (const request of requests) {
      const written = await new Promise<Error | null | undefined>((resolve) => socket.write(request, resolve));
      if (written) return { answers, writeError: (written as NodeJS.ErrnoException).code ?? written.message };
      const answer = await completeAnswer(() => received, () => closed);
      if (answer === undefined) return { answers, writeError: undefined };
      answers.push(answer);
      received = received.slice(answer.length);
    }
    return { answers, writeError: undefined };
  } finally {
    socket.destroy();
  }
}

/** The first whole answer (its headers and Content-Length body) in what has come, once it has; undefined if the connection closes first. */
async function completeAnswer(received: () => string, closed: () => boolean): Promise<string | undefined> {
  for (;;) {
    const text = received();
    const headersEnd = text.indexOf('\r\n\r\n');
    if (headersEnd >= 0) {
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, headersEnd))?.[1] ?? 0);
      if (text.length >= headersEnd + 4 + length) return text.slice(0, headersEnd + 4 + length);
    }
    if (closed()) return undefined;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
