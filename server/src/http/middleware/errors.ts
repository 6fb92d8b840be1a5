import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import { failureReason, quietRepeats } from '../../quiet-repeats.ts';
import { MeshErrorCodes } from '../../../../shared/src/protocol/index.ts';
import { ForbiddenError, MeshError, PayloadMissingError, ServiceUnavailableError } from '../../domain/errors.ts';
import { UnreadableMailboxError } from '../../store/mailboxes.ts';
import { ReplicasBehindError } from '../../store/replica-confirmation.ts';
import { isObjectStorageThrottling, statusOf } from '../../store/throttling.ts';
import { discardBodyAfterAnswer } from '../unread-body.ts';
import { errorBody } from '../views/errors.ts';
import type { RequestState } from './request-context.ts';

/**
 * The one place errors become responses: a MeshError keeps its status and code; anything
 * else is logged and answered 500 without internals (or 503 when a backing service is down).
 * Unmatched routes answer a MESH 404/405 too, so no reply is ever a bare Koa text page.
 */
export function errorResponder(logger: Logger, options: ErrorResponderOptions): Middleware<RequestState> {
  const { unreadBodyBytes, logIntervalMs = UNAVAILABLE_LOG_INTERVAL_MS, payloadsMissing } = options;
  // A backend away fails every request alike, thousands a second: a line per reason an interval.
  const quiet = quietRepeats(logIntervalMs);
  return async (ctx, next) => {
    try {
      await next();
      // The router answers a method no route knows (PROPFIND) 501, and OPTIONS a bare 200 listing
      // methods: MESH has neither, so both get the MESH 405 too. OPTIONS is taken nowhere, so
      // it is 405 on any path, `OPTIONS *` (asked of the server itself) and unknown ones included.
      if (((ctx.status === 405 || ctx.status === 501) && ctx.body === undefined) || ctx.method === 'OPTIONS') {
        throw new MeshError(405, MeshErrorCodes.methodNotAllowed);
      }
      if (ctx.status === 404 && ctx.body === undefined) {
        throw new MeshError(404, MeshErrorCodes.notFound);
      }
    } catch (thrown) {
      const error = toMeshError(thrown);
      ctx.state.refusal = { error: error.meshCode.code, ...(error instanceof ForbiddenError && error.reason ? { reason: error.reason } : {}) };
      // A client that went away mid-request is no server fault: were it logged as one, any client could flood the error log.
      // A refusal is logged by its code: its text may name what the client asked about (a sender's local id, a patient identifier).
      if (!ctx.res.socket || ctx.res.socket.destroyed) ctx.state.log.info(thrown instanceof MeshError ? { status: error.status, error: error.meshCode.code } : { err: thrown }, 'client went away');
      else if (error.clientCaused) ctx.state.log.info({ err: thrown }, 'request refused for what it sent');
      else if (thrown instanceof PayloadMissingError) {
        // Once a chunk an interval: its recipient asking again and again (a watcher's retries) is the same loss.
        const { messageId, chunkNumber: chunk } = thrown;
        payloadsMissing?.inc();
        quiet(
          `payload missing: ${messageId} ${chunk}`,
          () =>
            ctx.state.log.error(
              { messageId, chunk },
              'a chunk of a message still downloadable is missing from object storage (deleted from the bucket, by hand or by a lifecycle rule shorter than MESHBOX_PAYLOAD_RETENTION_SECONDS?): answered 410',
            ),
          (repeats) => logger.error({ messageId, chunk, repeats, seconds: logIntervalMs / 1000 }, `${repeats} more downloads found this chunk missing`),
        );
      } else if (isUnavailable(thrown)) {
        const reason = failureReason(thrown);
        quiet(
          reason,
          () => ctx.state.log.error({ err: thrown }, 'request failed: a backend is unavailable'),
          (repeats) => logger.error({ reason, repeats, seconds: logIntervalMs / 1000 }, `${repeats} more requests failed for this reason`),
        );
      } else if (error.status >= 500) ctx.state.log.error({ err: thrown }, 'request failed');
      // What the failed handler had set (a message's mex-* headers and type) is not this answer's.
      if (!ctx.headerSent) {
        for (const name of ctx.res.getHeaderNames()) if (!KEPT_ON_ERROR.has(name)) ctx.remove(name);
      }
      ctx.status = error.status;
      if (error.retryAfterSeconds !== undefined) ctx.set('Retry-After', String(error.retryAfterSeconds));
      ctx.body = errorBody(error, ctx.state.apiVersion, ctx.state.requestId);
      if (!keepsConnection(ctx.req, ctx.res, error, unreadBodyBytes)) ctx.set('Connection', 'close');
    }
  };
}

export interface ErrorResponderOptions {
  /** The most of a refused request's unread body read (and discarded) after its answer, its connection kept. */
  readonly unreadBodyBytes: number;
  readonly logIntervalMs?: number;
  /** Counts each download that found a chunk missing (its log line comes once an interval): operators alert on it. */
  readonly payloadsMissing?: Pick<Counter, 'inc'>;
}

/** Whether a refused request's connection may carry the next request: its whole body in, or read after the answer. */
function keepsConnection(request: IncomingMessage, response: ServerResponse, error: MeshError, unreadBodyBytes: number): boolean {
  if (error.closesConnection) return false;
  // A refusal that sheds load (429: over its rate or its transfers; 503: a backend away) reads no more: reading would undo it.
  if (error.status === 429 || error.status === 503) return request.complete;
  return discardBodyAfterAnswer(request, response, unreadBodyBytes);
}

/** How often a reason for answering 503 (Redis or object storage away) is logged at most. */
const UNAVAILABLE_LOG_INTERVAL_MS = 10_000;

/** Headers an error answer keeps: the request's id, and the methods a 405's route does allow. */
const KEPT_ON_ERROR = new Set(['x-request-id', 'allow']);

/** What a thrown error tells the client (exported for its tests). */
export function toMeshError(thrown: unknown): MeshError {
  if (thrown instanceof MeshError) return thrown;
  // A mailbox stored under another secret key needs an admin (UnreadableMailboxError says what): not a bare 500.
  if (thrown instanceof UnreadableMailboxError) return new ServiceUnavailableError(`mailbox ${thrown.mailboxId} cannot be read`);
  // Still throttled after the SDK's own retries (a 429 included, which is no failure of ours): the client backs off too.
  if (isObjectStorageThrottling(thrown)) return new ServiceUnavailableError('object storage is busy', THROTTLED_RETRY_AFTER_SECONDS);
  if (isUnavailable(thrown)) return new MeshError(503, MeshErrorCodes.serviceUnavailable);
  return new MeshError(500, MeshErrorCodes.internalError);
}

/**
 * How long a client is told to wait after object storage throttled its request: past the few
 * seconds the SDK's retries already waited, so that clients coming straight back do not keep the
 * spell going.
 */
const THROTTLED_RETRY_AFTER_SECONDS = 5;

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE']);

/** Redis or S3 out of reach: the client should retry later. */
function isUnavailable(thrown: unknown): boolean {
  if (!(thrown instanceof Error)) return false;
  if (thrown instanceof ReplicasBehindError) return true;
  const code = (thrown as NodeJS.ErrnoException).code;
  if (code && UNAVAILABLE_CODES.has(code)) return true;
  // Object storage silent past its timeout, throttling (429, 503 SlowDown), or failing itself (500 InternalError).
  if (thrown.name === 'TimeoutError' || isObjectStorageThrottling(thrown) || (statusOf(thrown) ?? 0) >= 500) return true;
  // ioredis with offline queue disabled, a connection that gave up retrying, a cluster without a
  // working node for the slot (redirected to a node that is down, or still moving its slots), or a
  // Redis refusing writes for now (out of memory, a replica left read-only by a failover, loading,
  // unable to persist, short of the replicas it must write to, busy with a script).
  return /Connection is closed|Stream isn't writeable|Socket timeout|MaxRetriesPerRequestError|ClusterAllFailedError|CLUSTERDOWN|slots cache|startup nodes|^(MOVED|ASK|TRYAGAIN|OOM|READONLY|LOADING|MASTERDOWN|MISCONF|NOREPLICAS|BUSY) |Too many Cluster redirections/i.test(
    `${thrown.message} ${thrown.name}`,
  );
}
