import type { Middleware } from 'koa';
import type { ReplicaConfirmation } from '../../store/replica-confirmation.ts';
import type { RequestState } from './request-context.ts';

/**
 * With Redis replicas asked for (MESHBOX_REDIS_WAIT_REPLICAS), a route that records what a client
 * counts on (a send, a chunk, an acknowledgement) answers its success only once its writes are on
 * them: the answer then survives a failover. Writes left unconfirmed answer 503, which clients
 * retry with the same token: a send's retry is told the message it recorded (mailbox-auth.ts), an
 * upload or acknowledgement is done again, and each waits again. Other requests do not wait: a
 * handshake or a poll is served while the replicas are away.
 */
export function confirmOnReplicas(replicas: ReplicaConfirmation): Middleware<RequestState> {
  if (!replicas.required) return (_ctx, next) => next();
  return async (ctx, next) => {
    const mark = replicas.mark();
    await next();
    if (ctx.status < 300) await replicas.confirm(mark);
  };
}
