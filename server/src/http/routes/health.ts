import type Router from '@koa/router';
import { readinessProbe } from '../../domain/health.ts';
import type { Services } from '../../domain/services.ts';
import type { Metrics } from '../../metrics.ts';
import type { RequestState } from '../middleware/request-context.ts';

/** Liveness, readiness and metrics for load balancers, orchestrators and Prometheus (still behind mutual TLS). */
export function registerHealthRoutes(router: Router<RequestState>, services: Services, metrics: Metrics): void {
  router.get('/metrics', async (ctx) => {
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  const probe = readinessProbe(services);
  router.get('/readyz', async (ctx) => {
    const readiness = await probe();
    ctx.status = readiness.ready ? 200 : 503;
    ctx.body = {
      status: readiness.ready ? 'ready' : 'unavailable',
      redis: readiness.redis ? 'ok' : 'unreachable',
      objectStorage: readiness.objectStorage,
    };
  });
}
