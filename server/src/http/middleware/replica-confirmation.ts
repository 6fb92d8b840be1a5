import type { Middleware } from 'koa';
import type { ReplicaConfirmation } from '../../store/replica-confirmation.ts';
import type { RequestState } from './request-context.ts';

/**
 * With Redis replicas asked for (MESHBOX_REDIS_WAIT_REPLICAS), a mailbox request that may have
 * written (any but a GET or HEAD) and succeeded is answered only once its writes are on them: a
 * 202 for a send, a chunk or an acknowledgement then survives a failover. Writes left unconfirmed
 * answer 503, which clients retry with the same token: a send's retry is told the message it
 * recorded (mailbox-auth.ts), an upload or acknowledgement is done again, and each waits again.
 */
export function confirmOnReplicas(replicas: ReplicaConfirmation): Middleware<RequestState> {
  if (!replicas.required) return (_ctx, next) => next();
  return async (ctx, next) => {
    if (ctx.method === 'GET' || ctx.method === 'HEAD') return next();
    const mark = replicas.mark();
    await next();
    if (ctx.status < 300) await replicas.confirm(mark);
  };
}
