/** What a MESH server said when it refused a request. */
export interface MeshErrorDetails {
  readonly status: number;
  /** The MESH error code (`12`, `InvalidHeaderChunks`, ...); undefined when the body had none. */
  readonly code: string | undefined;
  readonly event: string | undefined;
  readonly description: string;
  readonly messageId: string | undefined;
  /** The server's request id (v2 `internal_id`), for the operator's logs. */
  readonly internalId: string | undefined;
}

/** A request the server answered with an error status. */
export class MeshClientError extends Error implements MeshErrorDetails {
  readonly status: number;
  readonly code: string | undefined;
  readonly event: string | undefined;
  readonly description: string;
  readonly messageId: string | undefined;
  readonly internalId: string | undefined;

  constructor(details: MeshErrorDetails) {
    const code = details.code === undefined ? '' : `, MESH code ${details.code}`;
    super(`${details.description} (HTTP ${details.status}${code})`);
    this.name = 'MeshClientError';
    this.status = details.status;
    this.code = details.code;
    this.event = details.event;
    this.description = details.description;
    this.messageId = details.messageId;
    this.internalId = details.internalId;
  }
}

/** The server could not be reached, or the connection failed before an answer arrived. */
export class MeshConnectionError extends Error {
  readonly url: string;

  constructor(url: string, cause: Error) {
    super(`cannot reach ${url}: ${cause.message}`, { cause });
    this.name = 'MeshConnectionError';
    this.url = url;
  }
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad request',
  403: 'Forbidden',
  404: 'Not found',
  410: 'Gone',
  417: 'Expectation failed',
  423: 'Locked',
  429: 'Too many requests',
  500: 'Internal server error',
  502: 'Bad gateway',
  503: 'Service unavailable',
  504: 'Gateway timeout',
};

function text(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number') return String(value);
  return undefined;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/**
 * Reads an error body in whichever shape the server used: v2 `{message_id, internal_id,
 * detail:[{event, code, msg}]}`, v1 `{messageID, errorEvent, errorCode, errorDescription}`,
 * or anything else (a proxy's HTML page, an empty HEAD answer), which becomes the description.
 */
export function parseErrorBody(status: number, body: string): MeshClientError {
  let parsed: Record<string, unknown> | undefined;
  try {
    parsed = record(JSON.parse(body));
  } catch {
    parsed = undefined;
  }
  const fallback = body.trim().slice(0, 500) || STATUS_TEXT[status] || `HTTP ${status}`;
  if (!parsed) {
    return new MeshClientError({ status, code: undefined, event: undefined, description: fallback, messageId: undefined, internalId: undefined });
  }
  const detail = Array.isArray(parsed.detail) ? record(parsed.detail[0]) : undefined;
  if (detail) {
    return new MeshClientError({
      status,
      code: text(detail.code),
      event: text(detail.event),
      description: text(detail.msg) ?? fallback,
      messageId: text(parsed.message_id),
      internalId: text(parsed.internal_id),
    });
  }
  return new MeshClientError({
    status,
    code: text(parsed.errorCode),
    event: text(parsed.errorEvent),
    description: text(parsed.errorDescription) ?? fallback,
    messageId: text(parsed.messageID),
    internalId: text(parsed.internalID),
  });
}
