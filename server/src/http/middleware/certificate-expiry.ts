import type { TLSSocket } from 'node:tls';
import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import { DAY_MS, daysLeft, EXPIRY_WARNING_DAYS } from '../../../../shared/src/pki/validity.ts';
import { peerCertificate } from '../peer-certificate.ts';
import type { RequestState } from './request-context.ts';

/** Serials remembered as warned today; past this many the memory starts again (a few more warnings, no growth). */
const MAX_REMEMBERED = 100_000;

/**
 * Logs a warning, once a day per certificate, when a client connects with a certificate that
 * expires within EXPIRY_WARNING_DAYS: once it has expired the handshake fails, and the mailbox's
 * system stops sending and receiving until someone notices. Looked at once per connection.
 */
export function warnOfExpiringCertificates(logger: Logger, now: () => Date = () => new Date()): Middleware<RequestState> {
  const looked = new WeakSet<TLSSocket>();
  const warnedOnDay = new Map<string, number>();
  return async (ctx, next) => {
    const socket = ctx.req.socket as TLSSocket;
    if (!looked.has(socket)) {
      looked.add(socket);
      const { commonName, serialNumber, notAfter } = peerCertificate(socket);
      const at = now();
      const left = notAfter === undefined ? Infinity : daysLeft(notAfter, at);
      const today = Math.floor(at.getTime() / DAY_MS);
      if (left < EXPIRY_WARNING_DAYS && serialNumber !== undefined && warnedOnDay.get(serialNumber) !== today) {
        if (warnedOnDay.size >= MAX_REMEMBERED) warnedOnDay.clear();
        warnedOnDay.set(serialNumber, today);
        logger.warn(
          { certificate: { commonName, serialNumber, notAfter: notAfter?.toISOString() }, daysLeft: left },
          `the client certificate of ${commonName ?? '(no CN)'} expires in ${left} day${left === 1 ? '' : 's'}: have a new one signed and installed before then`,
        );
      }
    }
    await next();
  };
}
