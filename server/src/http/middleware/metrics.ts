import type { Middleware } from 'koa';
import type { Metrics } from '../../metrics.ts';
import type { RequestState } from './request-context.ts';

/** Counts each request by its route pattern (never the raw path: ids would explode the label set). */
export function recordMetrics(metrics: Metrics): Middleware<RequestState> {
  return async (ctx, next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      const route = (ctx as { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
      metrics.requests.inc({ route, method: ctx.method, status: String(ctx.status) });
      metrics.requestDuration.observe({ route, method: ctx.method }, (performance.now() - started) / 1000);
      metrics.bytesReceived.inc(ctx.request.length ?? 0);
      metrics.bytesSent.inc(ctx.response.length ?? 0);
    }
  };
}
