import type { Socket } from 'node:net';
import type { Middleware } from 'koa';
import type { Metrics } from '../../metrics.ts';
import { answeredStatus, type RequestState } from './request-context.ts';

/**
 * Counts each request by its route pattern (never the raw path: ids would explode the label
 * set) once its answer has ended, not when the handler returns: a streamed download's time
 * and bytes are those of the whole transfer, and one cut off is counted as `incomplete`, not
 * as the status its headers carried. Bytes are what the connection moved meanwhile (a
 * streamed upload has no Content-Length; a refused one may not have been read).
 */
export function recordMetrics(metrics: Metrics): Middleware<RequestState> {
  return async (ctx, next) => {
    const started = performance.now();
    const { socket } = ctx.req;
    // A refused body read after its answer (to keep the connection) is counted when the next request's is, or when the connection closes.
    if (!countedSoFar.has(socket)) {
      countedSoFar.set(socket, { read: 0, written: 0 });
      socket.once('close', () => countBytes(metrics, socket));
    }
    ctx.res.once('close', () => {
      const route = routeOf(ctx);
      metrics.requests.inc({ route, method: ctx.method, status: String(answeredStatus(ctx)) });
      metrics.requestDuration.observe({ route, method: ctx.method }, (performance.now() - started) / 1000);
      countBytes(metrics, socket);
    });
    await next();
  };
}

/** What the connection moved since it was last counted: the socket reads ahead of the handler. */
function countBytes(metrics: Metrics, socket: Socket): void {
  const previous = countedSoFar.get(socket) ?? { read: 0, written: 0 };
  const now = { read: socket.bytesRead, written: socket.bytesWritten };
  countedSoFar.set(socket, now);
  metrics.bytesReceived.inc(Math.max(0, now.read - previous.read));
  metrics.bytesSent.inc(Math.max(0, now.written - previous.written));
}

interface RoutedContext {
  readonly method: string;
  readonly _matchedRoute?: string;
  /** The router's layers whose path the request's matches: middleware (no methods) and routes. */
  readonly matched?: readonly { readonly path: string; readonly methods: readonly string[] }[];
}

/**
 * The route pattern a request asked for: the last route of its path and method the router
 * matched. Not `_matchedRoute` alone: a request refused by a router's middleware before its route
 * ran (authentication: 403, 429) has that middleware's pattern there, for every route.
 */
function routeOf(ctx: RoutedContext): string {
  const route = ctx.matched?.findLast((layer) => layer.methods.includes(ctx.method));
  return route?.path ?? ctx._matchedRoute ?? 'unmatched';
}

/** Per connection, its byte counts when its last request was counted. */
const countedSoFar = new WeakMap<Socket, { readonly read: number; readonly written: number }>();
