import type { TLSSocket } from 'node:tls';
import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import { DAY_MS, daysLeft, EXPIRY_WARNING_DAYS, expiryPhrase } from '../../../../shared/src/pki/validity.ts';
import type { Services } from '../../domain/services.ts';
import { expiredSinceHandshake, peerCertificate, type PeerCertificate } from '../peer-certificate.ts';
import { certificateRefused } from './revocation.ts';
import type { RequestState } from './request-context.ts';

/** Serials remembered (warned today, date recorded); past this many the memory starts again (a few more of each, no growth). */
const MAX_REMEMBERED = 100_000;

/** The one watch, mounted twice: where the revocation check has passed, and on the routes that answer without it. */
export interface CertificateExpiryWatch {
  /** After rejectRevokedCertificates: the certificate is known not to be revoked. */
  readonly checked: Middleware<RequestState>;
  /**
   * On health, readiness and metrics, which answer without the revocation check (they must,
   * while Redis is away): a monitoring system's certificate is used there only. The records are
   * asked off the request's path, and a revoked certificate (or one they cannot tell) is let be.
   * One that has expired since its connection's handshake is refused (403, the connection closed).
   */
  readonly unchecked: Middleware<RequestState>;
}

/**
 * Looks once per connection at the client certificate's end, unless it is revoked. One that
 * expires within EXPIRY_WARNING_DAYS is logged as a warning, once a day per certificate: once it
 * has expired the handshake fails, and the mailbox's system (or monitoring) stops until someone
 * notices. And its date is recorded where the records have none (a certificate issued before
 * dates were kept), once per certificate per process, so that `admin cert list` comes to know it.
 */
export function watchCertificateExpiry(services: Pick<Services, 'certificates' | 'now'>, logger: Logger): CertificateExpiryWatch {
  const looked = new WeakSet<TLSSocket>();
  const warnedOnDay = new Map<string, number>();
  const dated = new Set<string>();
  const warn = (peer: PeerCertificate, serialNumber: string, notAfter: Date): void => {
    const at = services.now();
    const left = daysLeft(notAfter, at);
    const today = Math.floor(at.getTime() / DAY_MS);
    if (left > EXPIRY_WARNING_DAYS || warnedOnDay.get(serialNumber) === today) return;
    if (warnedOnDay.size >= MAX_REMEMBERED) warnedOnDay.clear();
    warnedOnDay.set(serialNumber, today);
    logger.warn(
      { certificate: { commonName: peer.commonName, serialNumber, notAfter: notAfter.toISOString() }, daysLeft: left },
      `the client certificate of ${peer.commonName ?? '(no CN)'} ${expiryPhrase(left)}: have a new one signed and installed before then`,
    );
  };
  const recordDate = (serialNumber: string, notAfter: Date): void => {
    if (dated.has(serialNumber)) return;
    if (dated.size >= MAX_REMEMBERED) dated.clear();
    dated.add(serialNumber);
    // Off the request's path: a record not made now is made by the next process to see it.
    services.certificates.recordExpiryUnlessKnown(serialNumber, notAfter).catch((error: unknown) => {
      dated.delete(serialNumber);
      logger.debug({ err: error, serialNumber }, 'could not record a certificate expiry date');
    });
  };
  const watch =
    (revocationChecked: boolean): Middleware<RequestState> =>
    async (ctx, next) => {
      const socket = ctx.req.socket as TLSSocket;
      // Where no revocation check has refused it: a scraper's kept-alive connection would keep an expired certificate in use.
      if (!revocationChecked && expiredSinceHandshake(socket, services.now())) throw certificateRefused();
      if (!looked.has(socket)) {
        looked.add(socket);
        const peer = peerCertificate(socket);
        const { serialNumber, notAfter } = peer;
        if (serialNumber !== undefined && notAfter !== undefined) {
          const look = (): void => {
            warn(peer, serialNumber, notAfter);
            recordDate(serialNumber, notAfter);
          };
          if (revocationChecked) {
            look();
          } else {
            services.certificates.isRevoked(serialNumber).then(
              (revoked) => {
                if (!revoked) look();
              },
              (error: unknown) => logger.debug({ err: error, serialNumber }, 'could not tell whether a certificate is revoked; its end is looked at another time'),
            );
          }
        }
      }
      await next();
    };
  return { checked: watch(true), unchecked: watch(false) };
}
