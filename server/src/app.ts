import Router from '@koa/router';
import Koa from 'koa';
import type { Logger } from 'pino';
import { MESH_PATH_PREFIX } from '../../shared/src/protocol/index.ts';
import type { Services } from './domain/services.ts';
import { Metrics } from './metrics.ts';
import { refuseConnectionsOverClientLimit } from './http/client-connections.ts';
import { watchCertificateExpiry } from './http/middleware/certificate-expiry.ts';
import { errorResponder } from './http/middleware/errors.ts';
import { recordMetrics } from './http/middleware/metrics.ts';
import { type MailboxState, mailboxAuth } from './http/middleware/mailbox-auth.ts';
import { PendingWork } from './http/pending-work.ts';
import { apiVersion, checkRequestForm, meshMediaType, type RequestState, requestContext } from './http/middleware/request-context.ts';
import { rejectRevokedCertificates } from './http/middleware/revocation.ts';
import { registerHealthRoutes } from './http/routes/health.ts';
import { registerHandshakeRoutes, registerUpdateRoute } from './http/routes/mailbox.ts';
import { registerInboxRoutes } from './http/routes/inbox.ts';
import { registerOutboxRoutes } from './http/routes/outbox.ts';
import { registerPublicRoutes } from './http/routes/public.ts';

/** The Koa app without a listener: main.ts serves it over mutual TLS, tests do the same on port 0. */
export interface AppOptions {
  readonly metrics?: Metrics;
  /** Only health, readiness and metrics: a worker process's app. */
  readonly healthOnly?: boolean;
  /** Counts what requests are still doing, for a shutdown to wait for. */
  readonly pendingWork?: PendingWork;
}

export function createApp(services: Services, logger: Logger, options: AppOptions = {}): Koa<RequestState> {
  const metrics = options.metrics ?? new Metrics();
  const pendingWork = options.pendingWork ?? new PendingWork();
  const app = new Koa<RequestState>();
  app.proxy = false;
  // Errors are answered by errorResponder; this only keeps Koa from printing them again.
  app.silent = true;

  const expiry = watchCertificateExpiry(services, logger);
  const healthRoutes = new Router<RequestState>();
  // Before the routes: a monitoring system's certificate is used on these only (a worker serves nothing else).
  healthRoutes.use(expiry.unchecked);
  registerHealthRoutes(healthRoutes, services, metrics);

  app.use(pendingWork.middleware());
  app.use(requestContext(logger));
  app.use(recordMetrics(metrics));
  app.use(meshMediaType());
  // A worker's app takes no bodies: one sent is not read for its refusal.
  app.use(errorResponder(logger, { unreadBodyBytes: options.healthOnly ? 0 : services.limits.maxChunkBytes, payloadsMissing: metrics.payloadsMissing }));
  app.use(refuseConnectionsOverClientLimit());
  app.use(apiVersion());
  app.use(checkRequestForm());
  // Health first: it must answer (503) even while Redis, which revocation checks need, is away.
  app.use(healthRoutes.routes());
  if (options.healthOnly) return app;

  const publicRoutes = new Router<RequestState>({ prefix: MESH_PATH_PREFIX });
  registerPublicRoutes(publicRoutes, services);

  const mailboxRoutes = new Router<MailboxState>({ prefix: `${MESH_PATH_PREFIX}/:mailbox` });
  mailboxRoutes.use(mailboxAuth(services, pendingWork, logger));
  registerHandshakeRoutes(mailboxRoutes, services);
  registerUpdateRoute(mailboxRoutes);
  registerInboxRoutes(mailboxRoutes, services);
  registerOutboxRoutes(mailboxRoutes, services, pendingWork);

  app.use(rejectRevokedCertificates(services));
  // After the revocation check: a revoked certificate is not worth a warning, nor its date a record.
  app.use(expiry.checked);
  app.use(publicRoutes.routes());
  app.use(mailboxRoutes.routes() as Koa.Middleware<RequestState>);
  app.use(mailboxRoutes.allowedMethods() as Koa.Middleware<RequestState>);
  return app;
}
