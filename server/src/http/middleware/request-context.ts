import { randomUUID } from 'node:crypto';
import { Stream } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import { apiVersionFromAccept, type ApiVersion, MESH_V2_MEDIA_TYPE, MeshErrorCodes } from '../../../../shared/src/protocol/index.ts';
import { BadRequestError, MeshError } from '../../domain/errors.ts';
import { loggedText } from '../../logging.ts';
import { peerCertificate } from '../peer-certificate.ts';

export interface RequestState {
  requestId: string;
  apiVersion: ApiVersion;
  log: Logger;
  /** A refused request's MESH error code, and a 403's reason (never told the client), for its access-log line. */
  refusal?: { readonly error: string; readonly reason?: string };
}

/** Gives each request an id, a child logger and one access-log line when its answer ends. */
export function requestContext(logger: Logger): Middleware<RequestState> {
  return async (ctx, next) => {
    const started = performance.now();
    const requestId = randomUUID();
    ctx.state.requestId = requestId;
    ctx.state.apiVersion = 1;
    // Made on first use: most requests log nothing but the access line, which needs no child.
    let log: Logger | undefined;
    Object.defineProperty(ctx.state, 'log', {
      get: () => (log ??= logger.child({ requestId })),
      set: (replacement: Logger) => (log = replacement),
      enumerable: true,
      configurable: true,
    });
    ctx.set('X-Request-ID', requestId);
    if (logger.isLevelEnabled('info')) {
      // Taken now: a request destroyed before its body ended (one refused as it streams in) has
      // no socket by the time its answer closes.
      const socket = ctx.req.socket as TLSSocket;
      // Once the answer has ended, as the metrics count it: a streamed download's time is the
      // whole transfer's, and one cut off is `incomplete`, not the status its headers carried.
      ctx.res.once('close', () => {
        // Which certificate acted: with grants, one mailbox's certificate may act for another.
        const { commonName, serialNumber } = peerCertificate(socket);
        const { refusal } = ctx.state;
        logger.info(
          { requestId, method: ctx.method, path: loggedText(withoutLocalId(parsedPath(ctx) ?? ctx.url)), status: answeredStatus(ctx), ...refusal, ms: Math.round(performance.now() - started), certificate: { commonName, serialNumber } },
          'request',
        );
      });
    }
    await next();
  };
}

/** The status an ended answer carried, or `incomplete` when it was cut off before its end (its headers' status never reached the client whole). */
export function answeredStatus(ctx: { readonly status: number; readonly res: { readonly writableFinished: boolean } }): number | 'incomplete' {
  return ctx.res.writableFinished ? ctx.status : 'incomplete';
}

/** What Node takes for an expectation of 100-continue (its own test), which it meets itself. */
const CONTINUE_EXPECTED = /(?:^|\W)100-continue(?:$|\W)/i;

/** The v1 tracking by local id: what follows `/outbox/tracking/` is the sender's local id (in paths not served too: a doubled slash). */
const TRACKING_BY_LOCAL_ID = /^(.*?\/outbox\/tracking)\/.+$/i;

/**
 * The path as the access line has it: a sender's local id (often a specimen's or a patient's
 * number) stands as `:localId`, as operators' logs are no place for patient identifiers.
 */
function withoutLocalId(path: string): string {
  return path.replace(TRACKING_BY_LOCAL_ID, '$1/:localId');
}

/**
 * The request target's path; undefined when the target is no URL that Node parses (an absolute
 * form with a broken host, `http://[::1/x`), for which Koa's `ctx.path` throws, on every read.
 */
function parsedPath(ctx: { readonly path: string }): string | undefined {
  try {
    return ctx.path;
  } catch {
    return undefined;
  }
}

/**
 * What HTTP/1.1 asks of a request's form, refused with a MESH body where Node would answer
 * without one (or not at all): a target that is a URL (else 400, not the 500 of a router that
 * cannot read it), a Host header (RFC 9112, 3.2: else 400), and no `Expect` but `100-continue`,
 * which Node meets itself (RFC 9110, 10.1.1: else 417).
 */
export function checkRequestForm(): Middleware<RequestState> {
  return async (ctx, next) => {
    if (parsedPath(ctx) === undefined) throw new BadRequestError(MeshErrorCodes.invalidRequest, 'the request target is not a URL');
    const { httpVersion, headers } = ctx.req;
    if (httpVersion === '1.1') {
      if (headers.host === undefined) throw new BadRequestError(MeshErrorCodes.invalidRequest, 'an HTTP/1.1 request needs a Host header');
      if (headers.expect !== undefined && !CONTINUE_EXPECTED.test(headers.expect)) throw new MeshError(417, MeshErrorCodes.expectationFailed);
    }
    await next();
  };
}

/** The type of a JSON answer of meshbox's own: to a v2 request, as MESH types it; else plain JSON. */
export function jsonMediaType(version: ApiVersion): string {
  return version === 2 ? MESH_V2_MEDIA_TYPE : 'json';
}

/**
 * Types the JSON answers Koa serialises (an object body: meshbox's own answers, errors included,
 * never a payload, which goes as a stream or bytes with its sender's type) by jsonMediaType:
 * Koa would call them `application/json`. Outside errorResponder, so that its bodies are typed too.
 */
export function meshMediaType(): Middleware<RequestState> {
  return async (ctx, next) => {
    await next();
    const { body } = ctx;
    const serialised = body !== null && typeof body === 'object' && !Buffer.isBuffer(body) && !(body instanceof Stream);
    if (serialised && !ctx.headerSent) ctx.type = jsonMediaType(ctx.state.apiVersion);
  };
}

/** Picks the response version from Accept; a vnd.mesh type we do not know is a 400. */
export function apiVersion(): Middleware<RequestState> {
  return async (ctx, next) => {
    const version = apiVersionFromAccept(ctx.get('Accept') || undefined);
    if (version === undefined) {
      throw new BadRequestError(MeshErrorCodes.invalidAcceptHeader, ctx.get('Accept'));
    }
    ctx.state.apiVersion = version;
    await next();
  };
}

