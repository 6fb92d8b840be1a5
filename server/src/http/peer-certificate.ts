import type { TLSSocket } from 'node:tls';

export interface PeerCertificate {
  /** CN of the verified client certificate; undefined when it names none or several. */
  readonly commonName: string | undefined;
  readonly serialNumber: string | undefined;
  /** When it expires; undefined when unreadable. */
  readonly notAfter: Date | undefined;
}

const bySocket = new WeakMap<TLSSocket, PeerCertificate>();

/**
 * The client certificate of a connection, read once per connection: getPeerCertificate()
 * builds a fresh object from the certificate on every call, which costs more than the rest of
 * a small request's handling.
 */
export function peerCertificate(socket: TLSSocket): PeerCertificate {
  let known = bySocket.get(socket);
  if (!known) {
    const certificate = socket.getPeerCertificate();
    const commonName = certificate.subject?.CN;
    const notAfter = certificate.valid_to ? new Date(certificate.valid_to) : undefined;
    known = {
      commonName: typeof commonName === 'string' ? commonName : undefined,
      serialNumber: certificate.serialNumber || undefined,
      notAfter: notAfter && !Number.isNaN(notAfter.getTime()) ? notAfter : undefined,
    };
    bySocket.set(socket, known);
  }
  return known;
}
