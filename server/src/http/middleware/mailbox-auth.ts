import type { TLSSocket } from 'node:tls';
import type { Middleware } from 'koa';
import { authenticateMailbox } from '../../domain/authenticate.ts';
import type { Services } from '../../domain/services.ts';
import type { Mailbox } from '../../store/mailboxes.ts';
import { peerCertificate } from '../peer-certificate.ts';
import type { RequestState } from './request-context.ts';

export interface MailboxState extends RequestState {
  mailbox: Mailbox;
}

/** Statuses after which a client (mesh-client among them) retries with the identical token. */
const RETRYABLE_STATUSES = new Set([425, 429, 500, 502, 503, 504]);

/**
 * Authenticates the path mailbox (certificate + NHSMESH token). The token is claimed for
 * this request, and given back when the request was not served — a retryable status, or a
 * connection that closed before the response was complete — so the client's retry works.
 */
export function mailboxAuth(services: Services): Middleware<MailboxState> {
  return async (ctx, next) => {
    const { mailbox, token } = await authenticateMailbox(services, {
      certificateCommonName: peerCertificate(ctx.req.socket as TLSSocket).commonName,
      mailboxId: String(ctx.params.mailbox ?? ''),
      authorization: ctx.get('Authorization') || undefined,
    });
    ctx.state.mailbox = mailbox;
    const giveBackUnlessServed = (): void => {
      if (!ctx.res.writableFinished || RETRYABLE_STATUSES.has(ctx.status)) {
        services.usedTokens.release(token).catch((error: unknown) => {
          ctx.state.log.warn({ err: error }, 'could not release authorization token');
        });
      }
    };
    // The client may already have gone while we were authenticating: then 'close' has fired.
    if (ctx.res.closed) giveBackUnlessServed();
    else ctx.res.once('close', giveBackUnlessServed);
    await next();
  };
}
