import { STATUS_CODES } from 'node:http';
import { hasControlCharacters } from './untrusted-text.ts';

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

/** What to say to a refusal that refusesChunkSize recognises. */
export const CHUNK_SIZE_ADVICE = 'the server refuses chunks this large: use a smaller --chunk-size';

/** The server's 413 for a chunk over its size limit: a smaller --chunk-size helps (not so a message over its total size, also a 413). */
export function refusesChunkSize(error: unknown): error is MeshClientError {
  return error instanceof MeshClientError && error.status === 413 && /\bchunk\b/i.test(error.description);
}

/** Refusals of a request for what it is (malformed, too large, against the rules): sent again, it is refused again. */
const REQUEST_REFUSALS = new Set([400, 413, 417]);

/** Whether the server refused the request itself (not the caller, and not for now): repeating it cannot help. */
export function refusesTheRequest(error: unknown): error is MeshClientError {
  return error instanceof MeshClientError && REQUEST_REFUSALS.has(error.status);
}

/**
 * The longest description and code of a refusal kept: what a server says goes to stderr, to
 * dispatch's failed/ reasons and, under --watch, again at every poll; MESH's are a line.
 */
export const MAX_DESCRIPTION = 500;
const MAX_CODE = 100;

/** The text, cut to `length` characters, saying how many more there were. */
export function atMost(length: number, text: string): string {
  const more = text.length - length;
  return more <= 0 ? text : `${text.slice(0, length)}… (${more} more character${more === 1 ? '' : 's'})`;
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
    const description = atMost(MAX_DESCRIPTION, details.description);
    const given = details.code === undefined ? undefined : atMost(MAX_CODE, details.code);
    // Some of MESH's codes are phrases ("Message already accepted"): quoted, they read as a code.
    const code = given === undefined ? '' : `, MESH code ${/\s/.test(given) ? JSON.stringify(given) : given}`;
    super(`${description} (HTTP ${details.status}${code})`);
    this.name = 'MeshClientError';
    this.status = details.status;
    this.code = given;
    this.event = details.event;
    this.description = description;
    this.messageId = details.messageId;
    this.internalId = details.internalId;
  }
}

/**
 * An answer not come whole within the transport's deadline for it, though bytes kept coming (a
 * server trickling them): Node has no code for it. The request had gone whole.
 */
export const ANSWER_DEADLINE = 'EANSWERDEADLINE';

/** Connections that broke (reset, timed out) once made: a request may have gone out on them whole. */
export const BROKEN_CONNECTION_CODES: ReadonlySet<string> = new Set(['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED', ANSWER_DEADLINE]);

/** An answer whose body was to be JSON and is not (a proxy's page, say). */
export class NotJsonError extends Error {
  /** The start of the body. */
  readonly excerpt: string;

  constructor(status: number, excerpt: string) {
    super(`the server answered HTTP ${status} with a body that is not JSON: ${excerpt}`);
    this.name = 'NotJsonError';
    this.excerpt = excerpt;
  }
}

/** An answer of a right status that is not what was asked for (tracking of another message, say). */
export class UnexpectedAnswerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnexpectedAnswerError';
  }
}

/** An answer whose body runs past what this client reads of one (a misbehaving server): its status came, its body is not read. */
export class AnswerTooLargeError extends Error {
  readonly status: number;

  constructor(status: number, limit: number) {
    super(`response body larger than ${limit} bytes`);
    this.name = 'AnswerTooLargeError';
    this.status = status;
  }
}

/** A send answered 2xx whose message id cannot be read (not JSON, none, too large, not an id): the server took it. */
export class AcceptedWithoutIdError extends Error {
  readonly status: number;

  constructor(status: number, cause: Error) {
    super(`the server answered HTTP ${status}, but ${cause instanceof NotJsonError ? `its body is not JSON: ${cause.excerpt}` : cause.message}`, { cause });
    this.name = 'AcceptedWithoutIdError';
    this.status = status;
  }
}

/**
 * Whether an error answer leaves open that the server acted on the request all the same: a
 * server's own failure (500 and the like: it may have failed after recording it), or a gateway's
 * (502, 504: given after passing the request on). Not 501 (Not Implemented: nothing was done), nor
 * 503, which servers give without acting on a request (see the transport's RetryPolicy).
 */
export function answeredInDoubt(status: number): boolean {
  return status >= 500 && status <= 599 && status !== 501 && status !== 503;
}

/** A connection not made (TCP and TLS) within the idle timeout: Node has no code for it. Nothing was sent. */
export const CONNECT_TIMEOUT = 'ECONNECTTIMEOUT';

/** The server says the message is not there (any more): acknowledged elsewhere, expired, or never this mailbox's. */
export function isGone(error: unknown): error is MeshClientError {
  return error instanceof MeshClientError && (error.status === 404 || error.status === 410);
}

/** Node's word for an answer whose connection closed part-way ('aborted'), said plainly; any other failure as it is. */
export function answerCutOff(error: unknown): unknown {
  return error instanceof Error && error.message === 'aborted'
    ? new Error('the connection closed before the whole answer arrived', { cause: error })
    : error;
}

/**
 * A success answer whose body broke off part-way (the connection closed, or went quiet): the
 * server has acted on the request, only the rest of its answer is lost. A send so cut off has
 * made its message; only its id is lost.
 */
export class AnswerCutOffError extends Error {
  readonly status: number;

  constructor(status: number, cause: Error) {
    const plain = answerCutOff(cause);
    // Past its deadline, the answer did not break off: it was still coming, too slowly (the cause says so).
    const how = plain !== cause ? (plain as Error).message : errorCode(cause) === ANSWER_DEADLINE ? cause.message : `its answer broke off: ${cause.message}`;
    super(`the server answered HTTP ${status}, but ${how}`, { cause });
    this.name = 'AnswerCutOffError';
    this.status = status;
  }

  /** Whether a failure reading an answer's body is the connection's (and not, say, a body too large). */
  static isBrokenConnection(error: unknown): error is Error {
    return error instanceof Error && BROKEN_CONNECTION_CODES.has(errorCode(error) ?? '');
  }
}

/** Node's code for a failure (`ECONNRESET`, ...), if it has one. */
export function errorCode(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The server could not be reached, or the connection failed before an answer arrived. */
export class MeshConnectionError extends Error {
  readonly url: string;
  /**
   * The connection broke rather than never being made (refused, no such host): the server may
   * have received the request and acted on it, only the answer lost.
   */
  readonly mayHaveArrived: boolean;

  /**
   * A new connection the server closed before answering: what a server does to a client
   * certificate it refuses (revoked, expired, not from its CA), as TLS 1.3 ends the handshake
   * for the client before the server has checked it.
   */
  readonly closedOnConnect: boolean;

  /** For a connection closed on connect: what the client knows of why (its certificate out of its dates), if anything. */
  readonly likelyRefusal: string | undefined;

  constructor(url: string, cause: Error, attempt: { readonly newConnection: boolean; readonly likelyRefusal?: string | undefined } = { newConnection: false }) {
    const code = errorCode(cause);
    super(connectionFailure(url, code, cause.message), { cause });
    this.name = 'MeshConnectionError';
    this.url = url;
    this.mayHaveArrived = BROKEN_CONNECTION_CODES.has(code ?? '');
    this.closedOnConnect = attempt.newConnection && code === 'ECONNRESET';
    this.likelyRefusal = this.closedOnConnect ? attempt.likelyRefusal : undefined;
  }
}

/** OpenSSL's codes for a server certificate that the CA certificate given does not vouch for. */
const UNVOUCHED_SERVER_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
]);

/** What went wrong with the connection, as a user reads it: the server was reached or not. */
function connectionFailure(url: string, code: string | undefined, detail: string): string {
  // Node's parser gave up on the answer: the server was reached, its answer is what failed.
  if (code === 'HPE_HEADER_OVERFLOW') return `the answer from ${url} has larger headers than a client takes (${detail})`;
  if (code?.startsWith('HPE_')) return `the answer from ${url} is not valid HTTP (${detail})`;
  // The server was reached, and its certificate is what the client refused.
  if (UNVOUCHED_SERVER_CODES.has(code ?? '')) {
    return `the server at ${url} has a certificate the CA certificate given does not vouch for (${detail}): check --ca (MESHBOX_CA, or the profile's ca)`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the server at ${url} has a certificate for another name (${detail}): check --url`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return `the server at ${url} has a certificate out of its dates (${detail})`;
  if (code === 'ETIMEDOUT') return `no answer from ${url}: ${detail}`;
  if (code === ANSWER_DEADLINE) return `the server at ${url} did not answer in time: ${detail}`;
  if (BROKEN_CONNECTION_CODES.has(code ?? '')) return `the connection to ${url} broke: ${detail}`;
  return `cannot reach ${url}: ${detail}`;
}

/** Longest text of a non-MESH error body worth quoting; longer ones are pages, not messages. */
const MAX_EXCERPT = 200;

/**
 * What a body that is not MESH JSON says, in one line: the reason phrase (`Bad Gateway`), and
 * the body too when it is short plain text. A proxy's HTML page would fill stderr with markup
 * (under --watch at every poll), and an empty answer (HEAD) has nothing else to say.
 */
function plainDescription(status: number, body: string): string {
  const reason = STATUS_CODES[status] ?? 'the server answered with an error';
  const excerpt = oneLine(body);
  // Control characters mean the body is not text to show.
  const plain = excerpt !== '' && excerpt.length <= MAX_EXCERPT && !/<[a-z!/?]/i.test(excerpt) && !hasControlCharacters(excerpt);
  return plain && excerpt.toLowerCase() !== reason.toLowerCase() ? `${reason}: ${excerpt}` : reason;
}

/** Text on one line: every run of whitespace (line breaks included) one space, none at the ends. */
export function oneLine(text: string): string {
  return text.trim().replace(/\s+/g, ' ');
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number') return String(value);
  return undefined;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** The most of a validation refusal's list said: the rest is counted. */
const MAX_VALIDATION_ERRORS = 3;

/**
 * MESH's 400 for a request its validation refuses (the specification's HTTPValidationError, as
 * FastAPI gives it): `detail` lists `{loc, msg, type}`, loc naming what is refused (`['header',
 * 'mex-subject']`), and msg alone does not ("Field required"). Each said as `<loc>: <msg>`;
 * undefined when the list is not that.
 */
function validationDescription(items: readonly unknown[]): string | undefined {
  const said = items.map((item) => {
    const { loc, msg } = record(item) ?? {};
    const where = Array.isArray(loc) ? loc.map(text).filter((part) => part !== undefined) : [];
    return where.length > 0 && text(msg) !== undefined ? `${where.join(' ')}: ${text(msg)}` : undefined;
  });
  if (said.length === 0 || said.includes(undefined)) return undefined;
  const more = said.length - MAX_VALIDATION_ERRORS;
  return [...said.slice(0, MAX_VALIDATION_ERRORS), ...(more > 0 ? [`and ${more} more`] : [])].join('; ');
}

/**
 * Reads an error body in whichever shape the server used: v2 `{message_id, internal_id,
 * detail:[{event, code, msg}]}`, v1 `{messageID, errorEvent, errorCode, errorDescription}`,
 * a validation refusal (`validationDescription`), a failure of the server's own
 * (`failureMessage`), a framework's `{detail: "..."}`, or anything else (a proxy's HTML page, an empty HEAD answer), described
 * by its status alone (`plainDescription`).
 */
export function parseErrorBody(status: number, body: string): MeshClientError {
  let parsed: Record<string, unknown> | undefined;
  try {
    parsed = record(JSON.parse(body));
  } catch {
    parsed = undefined;
  }
  const fallback = plainDescription(status, body);
  if (!parsed) {
    return new MeshClientError({ status, code: undefined, event: undefined, description: fallback, messageId: undefined, internalId: undefined });
  }
  const detail = Array.isArray(parsed.detail) ? record(parsed.detail[0]) : undefined;
  if (detail) {
    return new MeshClientError({
      status,
      code: text(detail.code),
      event: text(detail.event),
      description: validationDescription(parsed.detail as unknown[]) ?? text(detail.msg) ?? fallback,
      messageId: text(parsed.message_id),
      internalId: text(parsed.internal_id),
    });
  }
  const internalId = text(parsed.internalID) ?? text(parsed.internal_id);
  return new MeshClientError({
    status,
    code: text(parsed.errorCode),
    event: text(parsed.errorEvent),
    // A string detail: a framework's own answer (FastAPI's `{"detail": "Not Found"}` for a path it has no route for).
    description: text(parsed.errorDescription) ?? failureMessage(parsed.message, internalId) ?? text(parsed.detail) ?? fallback,
    messageId: text(parsed.messageID),
    internalId,
  });
}

/**
 * A server's answer to a failure of its own, which has no MESH detail: `{internal_id, message}`
 * (MESH's sandbox, for a 500, or a 423 for a chunk of a finished message). Its message says to
 * contact support, who need the internal id: said with it, on one line.
 */
function failureMessage(message: unknown, internalId: string | undefined): string | undefined {
  const said = oneLine(text(message) ?? '');
  if (!said) return undefined;
  return internalId === undefined ? said : `${said} (internal id ${internalId})`;
}

/**
 * Whether an item's failure (a file's send, a message's download) is the server's being out of
 * reach, whatever the item: a connection to it never made (refused, no route, its certificate
 * refused as it connects), found in the error or what caused it. Every item after it would fail
 * alike, each after its own retries: a pass stops at it instead. A connection that broke part-way
 * may be the item's own doing (a server cutting off an upload it found too slow), and is not this.
 */
export function serverOutOfReach(error: unknown): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    if (cause instanceof MeshConnectionError) return !cause.mayHaveArrived || cause.closedOnConnect;
  }
  return false;
}

/** Answers that may refuse the mailbox, not the item: its credentials (403), or every request for now (429, 503, past the retries). */
const REFUSING_FOR_NOW = new Set([403, 429, 503]);

/** Whether an item's failure is an answer every item may get alike (see PassEnd). */
export function refusedForNow(error: unknown): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    if (cause instanceof MeshClientError) return REFUSING_FOR_NOW.has(cause.status);
  }
  return false;
}
