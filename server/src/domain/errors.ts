import { type MeshErrorCode, MeshErrorCodes } from '../../../shared/src/protocol/index.ts';

/**
 * A refusal the client is told about: HTTP status plus a MESH error code. The HTTP layer
 * turns every MeshError into the v1 or v2 error body in one place (http/middleware/errors.ts).
 */
export class MeshError extends Error {
  readonly status: number;
  readonly meshCode: MeshErrorCode;
  readonly messageId: string | undefined;
  /** Extra detail for the description, e.g. the fields that were malformed. */
  readonly detail: string | undefined;
  /** When the client should try again (sent as Retry-After), for a refusal that passes. */
  readonly retryAfterSeconds: number | undefined;
  /** The refusal is of the connection, not only of the request: it is closed after the answer. */
  readonly closesConnection: boolean;
  /**
   * A 5xx that what the client sent causes (a transfer coding no server need take, content its
   * sender corrupted): no fault of the server's, and not logged as one, or any client could fill
   * the error log.
   */
  readonly clientCaused: boolean;

  constructor(
    status: number,
    meshCode: MeshErrorCode,
    options: { messageId?: string; detail?: string; retryAfterSeconds?: number; closesConnection?: boolean; clientCaused?: boolean } = {},
  ) {
    super(options.detail ? `${meshCode.description}: ${options.detail}` : meshCode.description);
    this.name = new.target.name;
    this.status = status;
    this.meshCode = meshCode;
    this.messageId = options.messageId;
    this.detail = options.detail;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.closesConnection = options.closesConnection ?? false;
    this.clientCaused = options.clientCaused ?? false;
  }
}

/** Why a mailbox's request was refused 403: logged, never told the client. */
export type ForbiddenReason =
  | 'no valid token for the mailbox'
  | 'token timestamp out of window'
  | 'certificate not for the mailbox'
  | 'unknown mailbox'
  | 'wrong password'
  | 'mailbox inactive'
  | 'token used before';

/** 403 for every authentication or authorisation failure alike, so it reveals nothing; its reason is for the log alone. */
export class ForbiddenError extends MeshError {
  readonly reason: ForbiddenReason | undefined;

  constructor(reason?: ForbiddenReason) {
    super(403, MeshErrorCodes.authenticationFailed);
    this.reason = reason;
  }
}

export class BadRequestError extends MeshError {
  constructor(meshCode: MeshErrorCode, detail?: string) {
    super(400, meshCode, detail === undefined ? {} : { detail });
  }
}

/** 404: no such message for this mailbox (whether it exists for another is not told). */
export class MessageNotFoundError extends MeshError {
  constructor(messageId: string) {
    super(404, MeshErrorCodes.messageDoesNotExist, { messageId });
  }
}

/** 410: the message existed for this mailbox but can no longer be downloaded. */
export class MessageGoneError extends MeshError {
  constructor(messageId: string) {
    super(410, MeshErrorCodes.messageGone, { messageId });
  }
}

/**
 * A chunk's object missing from the bucket though its message may still be downloaded: gone for
 * the recipient too (410), but lost data, deleted behind meshbox's back (by hand, or by a bucket
 * lifecycle rule shorter than its retention), unless its purge was under way that moment.
 */
export class PayloadMissingError extends MessageGoneError {
  readonly chunkNumber: number;

  constructor(messageId: string, chunkNumber: number) {
    super(messageId);
    this.chunkNumber = chunkNumber;
  }
}

/** 417: the send was understood but cannot be delivered as asked. */
export class SendRejectedError extends MeshError {
  constructor(meshCode: MeshErrorCode, options: { messageId?: string; detail?: string } = {}) {
    super(417, meshCode, options);
  }
}

/** 408: a body that stopped arriving part-way, for so long that object storage gave up on its upload (the connection is closed: the rest may still come). */
export class BodyStalledError extends MeshError {
  constructor(messageId: string | undefined) {
    super(408, MeshErrorCodes.requestTimeout, { ...(messageId ? { messageId } : {}), closesConnection: true, clientCaused: true });
  }
}

/** 429: the mailbox sent more requests this second than allowed; retry after the given seconds. */
export class TooManyRequestsError extends MeshError {
  constructor(retryAfterSeconds: number) {
    super(429, MeshErrorCodes.tooManyRequests, { retryAfterSeconds });
  }
}

/** 429 on a connection its client opened beyond MESHBOX_MAX_CONNECTIONS_PER_CLIENT (see http/client-connections.ts): closed after the answer. */
export class TooManyConnectionsError extends MeshError {
  constructor(limit: number) {
    super(429, MeshErrorCodes.tooManyRequests, {
      detail: `this client holds ${limit} connections to this server already, its most; use fewer, or send this request on one of them`,
      retryAfterSeconds: 1,
      closesConnection: true,
    });
  }
}

/** 503: a backing service (Redis, object storage) is unavailable, or a step not yet done; the client may retry. */
export class ServiceUnavailableError extends MeshError {
  constructor(service: string, retryAfterSeconds?: number) {
    super(503, MeshErrorCodes.serviceUnavailable, { detail: service, ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }) });
  }
}
