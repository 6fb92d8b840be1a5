import { type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, STATUS_CODES } from 'node:http';
import { Agent, request } from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { TLSSocket } from 'node:tls';
import { ANSWER_DEADLINE, AnswerCutOffError, AnswerTooLargeError, answeredInDoubt, BROKEN_CONNECTION_CODES, CONNECT_TIMEOUT, errorCode, MeshClientError, MeshConnectionError, parseErrorBody } from './errors.ts';
import { SendTries } from './send-tries.ts';

/**
 * A request body. A Buffer or a function opening a fresh stream can be sent again on a
 * retry; a bare Readable is single-use, so a request carrying one is never retried.
 */
export type RequestBody = Buffer | Readable | (() => Readable);

/**
 * When a failed attempt may be repeated:
 * - `idempotent`: GETs, acknowledgements and chunk re-uploads, which the server accepts twice —
 *   after a dropped connection (an answer read whole that breaks off part-way included), a 429
 *   or a 5xx other than 501 (Not Implemented never changes).
 * - `same-token`: sending (which creates a message), every attempt with the first one's
 *   headers, token and all. Repeated when the server cannot have acted on it: connection
 *   refused, 429/503 (a server does not record the token of a request it answers that way
 *   without acting on it; meshbox, whose 503 may follow a send it recorded, answers the repeat
 *   with that message). After an attempt that may have reached the server (a reset on a kept-alive
 *   socket may be a stale socket or a server that took the message and lost its answer, and
 *   cannot be told apart; idle sockets are closed early so that stale ones are rare, see
 *   IDLE_SOCKET_MS), only when `repeatable()` says the server answers a send repeated with its
 *   token with the first try's message (meshbox), and then as `idempotent` ones are; so is a
 *   server's 500 (it may have failed after recording the send) or a gateway's 502 or 504, which
 *   it may give after passing the send on (answeredInDoubt). Should no
 *   later attempt be answered 2xx, the send stays in doubt: that attempt's failure is the error
 *   (a 503 the retries outlast, say, does not tell the first try's fate).
 * - `same-token-or-fresh`: as `same-token` while the server is not known to refuse a repeat;
 *   once an attempt is in doubt and `repeatable()` says the server does not answer a repeat with
 *   the first try's message, as `idempotent` (a fresh token each try). For chunk 1 of several,
 *   whose duplicate is never complete, so never delivered, but carries the local id.
 */
export type RetryPolicy = 'idempotent' | 'same-token' | 'same-token-or-fresh';

export interface TransportRequest {
  readonly method: 'GET' | 'HEAD' | 'POST' | 'PUT';
  /** Root-relative path with query, e.g. `/messageexchange/X/inbox?max_results=10`. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: RequestBody;
  readonly retry: RetryPolicy;
  /** For `same-token`: whether a send that may have reached the server can be asked again. Asked once, when it comes to that. */
  readonly repeatable?: () => Promise<boolean>;
  /**
   * For `same-token`: runs before every attempt after the first, so that a caller who waits
   * for every try to have ended counts from the last (a retry after a 429 may be the one that
   * ends in doubt). Its failure ends the send as the attempts so far leave it.
   */
  readonly beforeRetry?: () => Promise<void>;
  /** Statuses outside 2xx that are answers here, not errors (MESH's 300 for a local id several messages carry). */
  readonly acceptStatuses?: readonly number[];
}

export interface TransportResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The body, not yet read: the caller must consume or destroy it. */
  readonly body: IncomingMessage;
}

/** An answer whose (small) body was read whole within the attempt, so that one cut off is retried like a dropped connection. */
export interface TransportText {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

export interface TransportOptions {
  /** `https://host:port` */
  readonly origin: string;
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPem: string;
  /** Headers for one attempt; called again for every retry so each carries a fresh token (but see `same-token`). */
  readonly attemptHeaders: () => Record<string, string>;
  /** Retries after the first attempt (default 2). */
  readonly retries?: number;
  /** First backoff delay; each later one is three times longer, up to a minute (default 250 ms). */
  readonly retryDelayMs?: number;
  /** A socket idle this long fails the attempt (default 120 s); an answer has ANSWER_DEADLINE_SILENCES times as long to come. */
  readonly idleTimeoutMs?: number;
  /** Aborts the request or retry wait in progress and refuses new ones: nothing is retried after it. */
  readonly signal?: AbortSignal;
  /** Throws to refuse a request before anything is sent (a client certificate out of its dates). */
  readonly beforeEachRequest?: () => void;
  /** What the client knows of why a server closes a new connection unanswered (it refuses the certificate), if anything. */
  readonly likelyRefusal?: () => string | undefined;
  /** Hears each wait before a retry: why, and for how long (a command at a terminal says so). */
  readonly onRetryWait?: (reason: string, waitMs: number) => void;
}

/**
 * A kept-alive socket idle this long is closed, well before a server's own keep-alive timeout
 * (65 s for meshbox, 5 s at the least for common servers) could close it just as a request
 * goes out on it: a reset then could not be told from a lost answer.
 */
const IDLE_SOCKET_MS = 4_000;
/** The longest wait between attempts, however many retries are allowed. */
const MAX_BACKOFF_MS = 60_000;
/**
 * A Retry-After longer than this is not waited for: the error is reported instead, as a
 * command hanging for an hour helps nobody (and an upload can be resumed later).
 */
const MAX_RETRY_AFTER_MS = 5 * 60_000;
/**
 * How many silence timeouts an answer has to come, counted from when the request has gone whole:
 * its headers, and all of an answer that is not a payload (JSON: an inbox page, tracking, a
 * send's id). The silence timeout alone lets a server that trickles its answer, a byte now and
 * then, hold a request for ever. Such answers are small (an inbox page of 500 ids is ~15 KB, and
 * none is read past MAX_JSON_BODY, 16 MiB) and a server gives them at once: five silences (ten
 * minutes by default) let even 16 MiB through at ~30 KB/s, and grow with a --timeout raised for a
 * slow link. A payload's body has no deadline (it may be gigabytes): only the silence timeout.
 * An answer past its deadline is not asked for again: the server that trickled it would again.
 */
const ANSWER_DEADLINE_SILENCES = 5;
const CONNECTION_ERRORS = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', CONNECT_TIMEOUT]);
const MAX_ERROR_BODY = 64 * 1024;
/**
 * Of CONNECTION_ERRORS, those of a connection never made (refused, no route to the host or its
 * network, its name not resolved for now, the connect timeout): nothing of a request has gone.
 */
const NEVER_CONNECTED = new Set([...CONNECTION_ERRORS].filter((code) => !BROKEN_CONNECTION_CODES.has(code)));

/** Whether a failure with this code allows another attempt: any connection failure for what is harmless to repeat, only a connection never made for the rest. */
export function mayRetryAfter(policy: RetryPolicy, code: string | undefined): boolean {
  if (code === undefined) return false;
  return policy === 'idempotent' ? CONNECTION_ERRORS.has(code) : NEVER_CONNECTED.has(code);
}

/** Why one attempt failed before any answer arrived. */
interface AttemptFailure {
  readonly error: Error;
  /** The body's own stream failed (an unreadable file): the server is not to blame. */
  readonly bodyFailed: boolean;
  /**
   * On a connection made for this attempt (not one kept alive from an earlier request), and
   * within REFUSAL_WINDOW_MS of its TLS handshake: where a server refusing the client's
   * certificate closes it. One that had carried a request for longer (a large body going) broke otherwise.
   */
  readonly newConnection: boolean;
}

/** A server refusing a client certificate closes the connection as soon as it has it, a round trip after the handshake: this allows for a busy one. */
const REFUSAL_WINDOW_MS = 5000;

function retryableStatus(policy: RetryPolicy, status: number): boolean {
  if (status === 429 || status === 503) return true;
  return policy === 'idempotent' && status >= 500 && status <= 599 && status !== 501;
}

/** The wait before retry number `attempt + 1`: the first delay, tripled each time, capped. */
export function backoffDelay(firstDelayMs: number, attempt: number): number {
  return Math.min(firstDelayMs * 3 ** attempt, MAX_BACKOFF_MS);
}

/** The error of an answer that asks to be asked again later than this client waits: it says when. */
function askedToWait(error: MeshClientError, askedMs: number): MeshClientError {
  const { status, code, event, messageId, internalId } = error;
  const description = `${error.description}; the server asks to be asked again in ${Math.ceil(askedMs / 1000)} s, longer than the ${MAX_RETRY_AFTER_MS / 60_000} minutes this client waits`;
  return new MeshClientError({ status, code, event, description, messageId, internalId });
}

/** Retry-After (delay-seconds or an HTTP date) in ms from now; undefined when absent or unreadable. */
export function retryAfterMs(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Reads a (small) body as text, giving up past a bound so a misbehaving server cannot exhaust
 * memory. A failure comes as the stream gave it, for #mayRetry to judge (AnswerCutOffError says it plainly).
 */
async function readWhole(body: IncomingMessage, limit: number): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of body) {
    const buffer = part as Buffer;
    size += buffer.length;
    if (size > limit) {
      body.destroy();
      throw new AnswerTooLargeError(body.statusCode ?? 0, limit);
    }
    parts.push(buffer);
  }
  return Buffer.concat(parts).toString('utf8');
}

/**
 * HTTPS to one MESH server over a single keep-alive agent that carries the client
 * certificate. It retries what is safe to retry and turns error answers into
 * MeshClientError, so callers only ever see successful responses.
 */
export class HttpsTransport {
  readonly origin: string;
  readonly #agent: Agent;
  readonly #attemptHeaders: () => Record<string, string>;
  readonly #retries: number;
  readonly #retryDelayMs: number;
  readonly #idleTimeoutMs: number;
  readonly #signal: AbortSignal | undefined;
  readonly #beforeEachRequest: (() => void) | undefined;
  readonly #likelyRefusal: (() => string | undefined) | undefined;
  readonly #onRetryWait: ((reason: string, waitMs: number) => void) | undefined;

  constructor(options: TransportOptions) {
    this.origin = options.origin;
    this.#agent = new Agent({
      keepAlive: true,
      timeout: IDLE_SOCKET_MS,
      cert: options.certPem,
      key: options.keyPem,
      ca: options.caPem,
      minVersion: 'TLSv1.2',
    });
    this.#attemptHeaders = options.attemptHeaders;
    this.#retries = options.retries ?? 2;
    this.#retryDelayMs = options.retryDelayMs ?? 250;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 120_000;
    this.#signal = options.signal;
    this.#beforeEachRequest = options.beforeEachRequest;
    this.#likelyRefusal = options.likelyRefusal;
    this.#onRetryWait = options.onRetryWait;
  }

  /**
   * The answer with its body still to read (a chunk): a body that breaks off is the caller's to
   * deal with, and has no deadline (the headers have: ANSWER_DEADLINE_SILENCES).
   */
  send(request: TransportRequest): Promise<TransportResponse> {
    return this.#exchange(request, 'headers', (response) => response);
  }

  /**
   * The answer with its body read whole (up to `limit` bytes) within the attempt and within its
   * deadline (ANSWER_DEADLINE_SILENCES): one cut off part-way is retried as the policy allows, one
   * past its deadline is not.
   */
  async sendForText(request: TransportRequest, limit: number): Promise<TransportText> {
    const { status, headers, body } = await this.#exchange(request, 'whole', (response) => readWhole(response, limit));
    return { status, headers, text: body };
  }

  /** Closes the kept-alive sockets, so the process can exit. */
  close(): void {
    this.#agent.destroy();
  }

  /** The one retry loop: `read` takes the body of an answer that is not an error, and its failure is the attempt's. */
  async #exchange<Body>(
    request: TransportRequest,
    due: AnswerDue,
    read: (response: IncomingMessage) => Body | Promise<Body>,
  ): Promise<{ status: number; headers: IncomingHttpHeaders; body: Body }> {
    this.#beforeEachRequest?.();
    const replayable = !(request.body instanceof Readable);
    const pause = async (reason: string, ms: number): Promise<void> => {
      this.#onRetryWait?.(reason, ms);
      await sleep(ms, undefined, { signal: this.#signal });
    };
    let policy = request.retry;
    let firstHeaders = policy === 'idempotent' ? undefined : this.#attemptHeaders();
    let tries = policy === 'idempotent' ? undefined : new SendTries(request.repeatable);
    const failure = (error: Error): Error => tries?.failure(error) ?? error;
    /** Whether a try that may have reached the server (noted as such) is repeated. */
    const repeatInDoubt = async (sendTries: SendTries, doubt: Error, canRetry: boolean): Promise<boolean> => {
      sendTries.noteInDoubt(doubt);
      if (!canRetry || this.#signal?.aborted) return false;
      if (await sendTries.repeatable()) return true;
      if (policy !== 'same-token-or-fresh') return false;
      policy = 'idempotent';
      firstHeaders = undefined;
      tries = undefined;
      return true;
    };
    /** Whether to try again after a failure of the network. */
    const retryAfterBreak = async (error: unknown, asReported: MeshConnectionError | AnswerCutOffError | undefined, canRetry: boolean): Promise<boolean> => {
      if (tries === undefined || asReported === undefined || (asReported instanceof MeshConnectionError && !asReported.mayHaveArrived)) {
        return canRetry && this.#mayRetry(policy, error);
      }
      return (await repeatInDoubt(tries, asReported, canRetry)) && this.#mayRetry('idempotent', error);
    };
    for (let attempt = 0; ; attempt += 1) {
      // A stop between two tries ends the send as the tries so far leave it (in doubt, say).
      if (this.#signal?.aborted) throw failure(this.#signal.reason as Error);
      const canRetry = replayable && attempt < this.#retries;
      if (attempt > 0 && request.beforeRetry) await request.beforeRetry().catch((error: unknown) => Promise.reject(failure(error as Error)));
      let response: IncomingMessage;
      try {
        response = await this.#attempt(request, firstHeaders ?? this.#attemptHeaders(), due);
      } catch (attemptFailure) {
        // Refused before anything was sent (a header value Node will not write): the caller's mistake, as it is.
        if (attemptFailure instanceof Error) throw attemptFailure;
        const { error, bodyFailed, newConnection } = attemptFailure as AttemptFailure;
        if (bodyFailed || this.#signal?.aborted) throw failure(error);
        const connectionError = new MeshConnectionError(this.origin, error, { newConnection, likelyRefusal: this.#likelyRefusal?.() });
        if (await retryAfterBreak(error, connectionError, canRetry)) {
          await pause(connectionError.message, backoffDelay(this.#retryDelayMs, attempt));
          continue;
        }
        throw failure(connectionError);
      }
      const status = response.statusCode ?? 0;
      if (tries && answeredInDoubt(status)) {
        const serverFailure = await this.#errorFrom(status, response);
        if (await repeatInDoubt(tries, serverFailure, canRetry)) {
          await pause(serverFailure.message, backoffDelay(this.#retryDelayMs, attempt));
          continue;
        }
        throw failure(serverFailure);
      }
      if (canRetry && retryableStatus(policy, status)) {
        // The server may say when to come back (429, 503); never sooner than our own backoff.
        const asked = retryAfterMs(response.headers['retry-after']);
        if (asked === undefined || asked <= MAX_RETRY_AFTER_MS) {
          response.resume();
          await pause(`the server answered ${STATUS_CODES[status] ?? 'HTTP'} (HTTP ${status})`, Math.max(backoffDelay(this.#retryDelayMs, attempt), asked ?? 0));
          continue;
        }
        throw failure(askedToWait(await this.#errorFrom(status, response), asked));
      }
      // Only 2xx is MESH's success: a proxy's redirect (to a login page, say) passed on as an answer would be saved as the message.
      if ((status < 200 || status > 299) && !request.acceptStatuses?.includes(status)) throw failure(await this.#errorFrom(status, response));
      try {
        return { status, headers: response.headers, body: await read(response) };
      } catch (error) {
        const cutOff = AnswerCutOffError.isBrokenConnection(error) ? new AnswerCutOffError(status, error) : undefined;
        if (await retryAfterBreak(error, cutOff, canRetry)) {
          await pause((cutOff ?? (error as Error)).message, backoffDelay(this.#retryDelayMs, attempt));
          continue;
        }
        throw failure(cutOff ?? (error as Error));
      }
    }
  }

  /**
   * Whether a failure of the network, before the answer or while its body was read, allows
   * another attempt. An answer cut off part-way is Node's ECONNRESET ('aborted') or the idle
   * timeout's ETIMEDOUT: the dropped connection it is. A body over its bound has no code, and is
   * not the network's doing. A stop ends the body as a reset too, and nothing follows it.
   */
  #mayRetry(policy: RetryPolicy, error: unknown): boolean {
    return !this.#signal?.aborted && mayRetryAfter(policy, errorCode(error));
  }

  async #errorFrom(status: number, response: IncomingMessage): Promise<MeshClientError> {
    let body = '';
    try {
      body = await readWhole(response, MAX_ERROR_BODY);
    } catch {
      // An unreadable error body still leaves the status to report.
    }
    const location = response.headers.location;
    if (status >= 300 && status < 400 && location) {
      const description = `the server redirected to ${location}: a MESH server never does; check the server URL`;
      return new MeshClientError({ status, code: undefined, event: undefined, description, messageId: undefined, internalId: undefined });
    }
    return parseErrorBody(status, body);
  }

  #attempt(spec: TransportRequest, attemptHeaders: Record<string, string>, due: AnswerDue): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      let answered = false;
      const headers: Record<string, string> = { ...attemptHeaders, ...spec.headers };
      const body = typeof spec.body === 'function' ? spec.body() : spec.body;
      if (Buffer.isBuffer(body)) headers['Content-Length'] = String(body.length);
      const options = { method: spec.method, headers, agent: this.#agent, ...(this.#signal ? { signal: this.#signal } : {}) };
      let outgoing: ClientRequest;
      let handshakeAt: number | undefined;
      try {
        outgoing = request(new URL(spec.path, this.origin), options, (response) => {
          answered = true;
          resolve(response);
        });
        outgoing.once('socket', (socket) => {
          if (!outgoing.reusedSocket) socket.once('secureConnect', () => (handshakeAt = performance.now()));
        });
      } catch (refused) {
        // A header value Node will not write: the body opened for this attempt (a file) is closed, not left open.
        if (body instanceof Readable) body.destroy();
        throw refused;
      }
      // Whichever failed first: a failing body destroys the request and the other way round,
      // so both report an error, and only the first says what went wrong.
      let firstFailure: { readonly error: Error; readonly inBody: boolean } | undefined;
      const fail = (error: Error): void => {
        // The server may answer (say 417) before it has read the whole upload and then drop
        // the rest; errors after the answer belong to the upload, not to the request.
        if (answered) return;
        const first = firstFailure ?? { error, inBody: false };
        const justMade = !outgoing.reusedSocket && (handshakeAt === undefined || performance.now() - handshakeAt < REFUSAL_WINDOW_MS);
        reject({ error: first.error, bodyFailed: first.inBody, newConnection: justMade } satisfies AttemptFailure);
      };
      outgoing.on('error', (error) => {
        firstFailure ??= { error, inBody: false };
        fail(error);
      });
      failWhenIdle(outgoing, body instanceof Readable ? body : undefined, this.#idleTimeoutMs);
      failPastDeadline(outgoing, ANSWER_DEADLINE_SILENCES * this.#idleTimeoutMs, due);
      if (body === undefined || Buffer.isBuffer(body)) {
        outgoing.end(body);
      } else {
        body.once('error', (error) => {
          firstFailure ??= { error, inBody: true };
        });
        pipeline(body, outgoing).catch(fail);
      }
    });
  }
}

/**
 * Fails a request on which no byte has moved either way for `ms`, counted from its start
 * (connecting and the TLS handshake included). Node's own socket timeout (ClientRequest.setTimeout)
 * starts counting only once TCP has connected and, over TLS, fired at twice the time (measured):
 * a stalled server held each attempt for four minutes instead of two.
 */
function failWhenIdle(outgoing: ClientRequest, body: Readable | undefined, ms: number): void {
  let timer: NodeJS.Timeout | undefined;
  // Until the TLS handshake is done the request cannot have gone: the server was never reached.
  let connected = false;
  const moved = (): void => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const stalled = connected
        ? Object.assign(new Error(`no activity for ${ms} ms`), { code: 'ETIMEDOUT' })
        : Object.assign(new Error(`no connection within ${ms} ms`), { code: CONNECT_TIMEOUT });
      // An answer under way ends too, and its reader learns why (else only Node's 'aborted').
      (outgoing as ClientRequest & { res?: IncomingMessage }).res?.destroy(stalled);
      outgoing.destroy(stalled);
    }, ms);
  };
  moved();
  body?.on('data', moved);
  // The socket outlives the request (kept alive for the next): the listener goes with the request.
  outgoing.once('socket', (socket) => {
    // A kept-alive socket is connected already.
    if (socket.connecting) socket.once(socket instanceof TLSSocket ? 'secureConnect' : 'connect', () => (connected = true));
    else connected = true;
    socket.on('data', moved);
    outgoing.once('close', () => socket.removeListener('data', moved));
  });
  outgoing.once('close', () => clearTimeout(timer));
}

/** What of an answer its deadline covers: a success's headers (a payload follows them), or the whole of it. An error's body is read whole either way. */
type AnswerDue = 'headers' | 'whole';

/**
 * Fails a request whose answer (with `due` 'headers' a success's headers, else all of it) has not
 * come `ms` after the request went whole, however steadily its bytes trickle in: failWhenIdle
 * counts only silence. Counted from then, so that an upload (a chunk of 100 MB) is not hurried.
 */
function failPastDeadline(outgoing: ClientRequest, ms: number, due: AnswerDue): void {
  let timer: NodeJS.Timeout | undefined;
  let over = false;
  const stop = (): void => {
    over = true;
    clearTimeout(timer);
  };
  outgoing.once('finish', () => {
    if (over) return;
    timer = setTimeout(() => {
      const seconds = Math.round(ms / 1000);
      const late = Object.assign(
        new Error(
          `its answer did not come whole within ${seconds} s of the request, though bytes kept coming ` +
            `(the deadline of an answer that is not a payload: ${ANSWER_DEADLINE_SILENCES} times --timeout)`,
        ),
        { code: ANSWER_DEADLINE },
      );
      (outgoing as ClientRequest & { res?: IncomingMessage }).res?.destroy(late);
      outgoing.destroy(late);
    }, ms);
  });
  if (due === 'headers') {
    outgoing.once('response', (response) => {
      const status = response.statusCode ?? 0;
      if (status >= 200 && status <= 299) stop();
    });
  }
  // Once the answer is read (or the request failed): the request closes.
  outgoing.once('close', stop);
}
