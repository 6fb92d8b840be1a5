import type { TLSSocket } from 'node:tls';
import type { Middleware } from 'koa';
import { MeshErrorCodes } from '../../../../shared/src/protocol/index.ts';
import { MeshError } from '../../domain/errors.ts';
import type { Services } from '../../domain/services.ts';
import { expiredSinceHandshake, peerCertificate } from '../peer-certificate.ts';
import type { RequestState } from './request-context.ts';

/** 403, and the connection closed: a new one's handshake refuses the certificate. */
export function certificateRefused(): MeshError {
  return new MeshError(403, MeshErrorCodes.authenticationFailed, { closesConnection: true });
}

/** How long a connection's certificate counts as checked: revocations reach open keep-alive connections within this. */
const RECHECK_MS = 30_000;

/**
 * Refuses requests whose client certificate is revoked, or has expired since its connection's
 * handshake (403, and the connection closed: a new one's handshake refuses the certificate).
 * The CRL, when configured, and the handshake's date check refuse new connections; this also
 * catches connections opened before, which a client polling within the keep-alive time would
 * otherwise hold for ever, and deployments without a CRL file. One revocation lookup per
 * connection per 30 s; the expiry is compared on every request.
 */
export function rejectRevokedCertificates(services: Services): Middleware<RequestState> {
  const checked = new WeakMap<TLSSocket, { readonly at: number; readonly revoked: boolean }>();
  return async (ctx, next) => {
    const socket = ctx.req.socket as TLSSocket;
    const now = services.now().getTime();
    let verdict = checked.get(socket);
    // A clock set back meanwhile ends the verdict too.
    if (!verdict || !(now >= verdict.at && now - verdict.at <= RECHECK_MS)) {
      const { serialNumber } = peerCertificate(socket);
      verdict = { at: now, revoked: !serialNumber || (await services.certificates.isRevoked(serialNumber)) };
      checked.set(socket, verdict);
    }
    if (verdict.revoked || expiredSinceHandshake(socket, new Date(now))) throw certificateRefused();
    await next();
  };
}
