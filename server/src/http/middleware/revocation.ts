import type { TLSSocket } from 'node:tls';
import type { Middleware } from 'koa';
import { ForbiddenError } from '../../domain/errors.ts';
import type { Services } from '../../domain/services.ts';
import { peerCertificate } from '../peer-certificate.ts';
import type { RequestState } from './request-context.ts';

/** How long a connection's certificate counts as checked: revocations reach open keep-alive connections within this. */
const RECHECK_MS = 30_000;

/**
 * Refuses requests whose client certificate is revoked (403). The CRL, when configured,
 * refuses new TLS handshakes; this also catches connections opened before the revocation
 * and deployments without a CRL file. One lookup per connection per 30 s.
 */
export function rejectRevokedCertificates(services: Services): Middleware<RequestState> {
  const checked = new WeakMap<TLSSocket, { readonly at: number; readonly revoked: boolean }>();
  return async (ctx, next) => {
    const socket = ctx.req.socket as TLSSocket;
    const now = Date.now();
    let verdict = checked.get(socket);
    if (!verdict || now - verdict.at > RECHECK_MS) {
      const { serialNumber } = peerCertificate(socket);
      verdict = { at: now, revoked: !serialNumber || (await services.certificates.isRevoked(serialNumber)) };
      checked.set(socket, verdict);
    }
    if (verdict.revoked) throw new ForbiddenError();
    await next();
  };
}
