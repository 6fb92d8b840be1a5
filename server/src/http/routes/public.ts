import type Router from '@koa/router';
import type { RequestState } from '../middleware/request-context.ts';

/** Endpoints that need no mailbox token (the TLS client certificate is still required). */
export function registerPublicRoutes(router: Router<RequestState>): void {
  router.get('/_ping', (ctx) => {
    ctx.body = { status: 'ok', service: 'meshbox', timestamp: new Date().toISOString() };
  });
}
