import type { TLSSocket } from 'node:tls';
import type { Middleware } from 'koa';
import { authenticateMailbox } from '../../domain/authenticate.ts';
import type { Services } from '../../domain/services.ts';
import type { Mailbox } from '../../store/mailboxes.ts';
import { peerCertificate } from '../peer-certificate.ts';
import type { RequestState } from './request-context.ts';

export interface MailboxState extends RequestState {
  mailbox: Mailbox;
  /** The request repeats one served before with the same token (a client's retry after a lost answer). */
  repeatedRequest: boolean;
}

/** `.../{mailbox}/outbox`: a send (chunk 1 of a new message), in any letter case, as the router matches it. */
const SEND_PATH = /\/outbox\/?$/i;

/** Statuses after which a client (mesh-client among them) retries with the identical token. */
const RETRYABLE_STATUSES = new Set([425, 429, 500, 502, 503, 504]);

/**
 * Authenticates the path mailbox (certificate + NHSMESH token). The token is claimed for
 * this request, and given back when the request was not served — a retryable status, or a
 * connection that closed before the response was complete — so the client's retry works. A
 * retry whose answer was lost after it was sent whole finds the token used, by this request:
 * one that is harmless to repeat is served again (authenticateMailbox).
 */
export function mailboxAuth(services: Services): Middleware<MailboxState> {
  return async (ctx, next) => {
    const { mailbox, token, repeated } = await authenticateMailbox(services, {
      certificateCommonName: peerCertificate(ctx.req.socket as TLSSocket).commonName,
      mailboxId: String(ctx.params.mailbox ?? ''),
      authorization: ctx.get('Authorization') || undefined,
      request: `${ctx.method} ${ctx.path}`,
      // Sending creates a message: done twice, it would be delivered twice.
      repeatable: !(ctx.method === 'POST' && SEND_PATH.test(ctx.path)),
    });
    ctx.state.mailbox = mailbox;
    ctx.state.repeatedRequest = repeated;
    // A repeat claimed nothing, so it has nothing to give back.
    if (repeated) return next();
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
