import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Middleware } from 'koa';
import { TooManyConnectionsError } from '../domain/errors.ts';
import { HoldsPerKey } from '../domain/holds-per-key.ts';
import { apiVersionFromAccept } from '../../../shared/src/protocol/index.ts';
import type { RequestState } from './middleware/request-context.ts';
import { clientOf, peerCertificate } from './peer-certificate.ts';

/** Connections admitted over their client's limit: each is answered 429 and closed. The value is the limit, for the answer. */
const overLimit = new WeakMap<Duplex, number>();

/**
 * Counts each client's open connections to one server, the client named by its certificate's
 * CN (its mailbox, or a monitoring system's name): the server's MESHBOX_MAX_CONNECTIONS is
 * shared by every client, and without this one client (a folder watcher leaking connections, a
 * misconfigured pool) could hold them all and leave every other organisation refused. Only a
 * handshaken connection names its client, so this counts after the handshake.
 */
export class ClientConnectionLimit {
  readonly #connections: HoldsPerKey;

  /** `max` 0: no limit. */
  constructor(max: number) {
    this.#connections = new HoldsPerKey(max);
  }

  /** Counts a handshaken connection until it closes, or marks it over its client's limit (and then does not count it); says which. */
  admit(socket: TLSSocket): { readonly admitted: true } | { readonly admitted: false; readonly client: string } {
    const client = clientOf(peerCertificate(socket));
    const release = this.#connections.take(client);
    if (!release) {
      overLimit.set(socket, this.#connections.max);
      return { admitted: false, client };
    }
    socket.once('close', release);
    return { admitted: true };
  }
}

/**
 * Answers every request on a connection over its client's limit 429 and closes it: the client
 * learns why (a connection closed without a word would look like a network fault, and be
 * retried at once), and its connections already open go on being served. First of all the
 * checks of a request, so that nothing else (an Accept header it does not take) is answered
 * instead, on a connection kept open; the answer is in the API version asked for, if any.
 */
export function refuseConnectionsOverClientLimit(): Middleware<RequestState> {
  return async (ctx, next) => {
    const limit = overLimit.get(ctx.req.socket);
    if (limit === undefined) return next();
    const version = apiVersionFromAccept(ctx.get('Accept') || undefined);
    if (version !== undefined) ctx.state.apiVersion = version;
    throw new TooManyConnectionsError(limit);
  };
}
