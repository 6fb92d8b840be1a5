import type { TLSSocket } from 'node:tls';
import { LRUCache } from 'lru-cache';
import { mailboxIdOf } from '../../../shared/src/protocol/index.ts';

export interface PeerCertificate {
  /**
   * CN of the verified client certificate; undefined when it names none or several, or when it is
   * a CA's certificate: one that can sign others is no mailbox's (meshbox's PKI never issues such
   * a client certificate; an operator's CA might, for an intermediate).
   */
  readonly commonName: string | undefined;
  readonly serialNumber: string | undefined;
  /** When it expires; undefined when unreadable. */
  readonly notAfter: Date | undefined;
}

const bySocket = new WeakMap<TLSSocket, PeerCertificate>();

/**
 * Certificates read, by their SHA-256 fingerprint: most clients open a connection per poll, with
 * the same certificate each time. As many as there are mailboxes in England, and then some.
 */
const byFingerprint = new LRUCache<string, PeerCertificate>({ max: 50_000 });

/**
 * The client certificate of a connection, read once per connection, and once per certificate:
 * getPeerCertificate() builds a fresh object from the certificate on every call (~100 µs, a
 * tenth of a resumed handshake's cost), where its fingerprint costs a few.
 */
export function peerCertificate(socket: TLSSocket): PeerCertificate {
  let known = bySocket.get(socket);
  if (!known) {
    const x509 = socket.getPeerX509Certificate();
    const fingerprint = x509?.fingerprint256;
    known = fingerprint === undefined ? undefined : byFingerprint.get(fingerprint);
    if (!known) {
      known = readPeerCertificate(socket, x509?.ca ?? false);
      if (fingerprint !== undefined) byFingerprint.set(fingerprint, known);
    }
    bySocket.set(socket, known);
  }
  return known;
}

function readPeerCertificate(socket: TLSSocket, authority: boolean): PeerCertificate {
  const certificate = socket.getPeerCertificate();
  const commonName = authority ? undefined : certificate.subject?.CN;
  const notAfter = certificate.valid_to ? new Date(certificate.valid_to) : undefined;
  return {
    commonName: typeof commonName === 'string' ? commonName : undefined,
    serialNumber: certificate.serialNumber || undefined,
    notAfter: notAfter && !Number.isNaN(notAfter.getTime()) ? notAfter : undefined,
  };
}

/**
 * Who a certificate's holder is counted as, for what each client may hold or ask (connections,
 * lookups): the mailbox its CN names (mailboxIdOf: a CN in look-alike letters is not counted as
 * the mailbox it imitates), else its CN as it is, else its serial number.
 */
export function clientOf(certificate: PeerCertificate): string {
  const { commonName, serialNumber } = certificate;
  if (commonName === undefined) return `serial ${serialNumber ?? 'unknown'}`;
  return mailboxIdOf(commonName) ?? `CN ${commonName}`;
}

/** Whether the connection's client certificate has expired since its handshake (which refuses an expired one). */
export function expiredSinceHandshake(socket: TLSSocket, now: Date): boolean {
  const { notAfter } = peerCertificate(socket);
  return notAfter !== undefined && now >= notAfter;
}
