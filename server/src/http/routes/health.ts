import type Router from '@koa/router';
import { checkReadiness } from '../../domain/health.ts';
import type { Services } from '../../domain/services.ts';
import type { RequestState } from '../middleware/request-context.ts';

/** Liveness and readiness for load balancers and orchestrators (still behind mutual TLS). */
export function registerHealthRoutes(router: Router<RequestState>, services: Services): void {
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', async (ctx) => {
    const readiness = await checkReadiness(services);
    ctx.status = readiness.ready ? 200 : 503;
    ctx.body = {
      status: readiness.ready ? 'ready' : 'unavailable',
      redis: readiness.redis ? 'ok' : 'unreachable',
      objectStorage: readiness.objectStorage ? 'ok' : 'unreachable',
    };
  });
}
