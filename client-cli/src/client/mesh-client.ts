import { arch, release, type as osType } from 'node:os';
import type { Readable } from 'node:stream';
import {
  buildAuthorizationHeader,
  MESH_PATH_PREFIX,
  MESH_V1_MEDIA_TYPE,
  MESH_V2_MEDIA_TYPE,
  MeshHeaders,
} from '../../../shared/src/protocol/index.ts';
import { CLIENT_VERSION } from '../version.ts';
import { AcceptedWithoutIdError, AnswerTooLargeError, NotJsonError, parseErrorBody, UnexpectedAnswerError } from './errors.ts';
import { checkedMessageId } from './untrusted-text.ts';
import { type MessageMetadata, metadataFromHeaders } from './message-metadata.ts';
import { HttpsTransport, type RequestBody, type RetryPolicy, type TransportRequest, type TransportResponse, type TransportText } from './transport.ts';
import { describeCertificate } from '../../../shared/src/pki/inspect.ts';

export interface ConnectionSettings {
  /** Server origin, e.g. `https://localhost:8443`. */
  readonly url: string;
  readonly mailboxId: string;
  readonly password: string;
  /** The environment's shared HMAC key for the NHSMESH token. */
  readonly sharedKey: string;
  readonly certPem: string;
  readonly keyPem: string;
  /** The CA that signed the server's certificate. */
  readonly caPem: string;
  /** A request that goes this long without a byte either way fails (default 120 s); an answer that is not a payload has five times this in all (see the transport). */
  readonly idleTimeoutMs?: number;
  /** Where the client certificate came from, for errors, e.g. `/etc/mesh/lab.crt (from --cert)`. */
  readonly certificateSource?: string;
}

export interface ClientOptions {
  /** Retries after a first failed attempt, where retrying is safe (default 2). */
  readonly retries?: number;
  /** First backoff delay in ms (default 250), tripled for each later retry. */
  readonly retryDelayMs?: number;
  /** Ends every request and wait in progress, and refuses new ones (a long-running command stopped). */
  readonly signal?: AbortSignal;
  /** Hears each wait before a retry: why, and for how long. */
  readonly onRetryWait?: (reason: string, waitMs: number) => void;
}

export interface InboxOptions {
  /** Page size asked of the server. */
  readonly maxResults?: number;
  /** MESH's workflow_filter: `X` exactly, `X*` beginning with, `*X*` containing; `!` before any: all but those. */
  readonly workflowFilter?: string;
}

const DEFAULT_RETRIES = 2;
const DEFAULT_RETRY_DELAY_MS = 250;

/**
 * `gzip`: the chunk is gzipped for the journey (Content-Encoding), each chunk on its own; the
 * server stores it so and undoes it for recipients that do not take gzip. Not to be confused
 * with mex-Content-Compressed, which says the payload itself is compressed.
 */
export type TransferEncoding = 'gzip' | undefined;

export type ChunkBody = RequestBody;

export interface SendOptions {
  readonly to: string;
  readonly workflowId: string;
  /**
   * Chunk 1. A Buffer or a function opening a stream (e.g. `() => createReadStream(file)`)
   * lets a refused attempt be repeated; a bare Readable is sent once.
   */
  readonly body: ChunkBody;
  /** Bytes in the body when it is a stream; sent as Content-Length (else chunked encoding). Ignored for gzip. */
  readonly size?: number;
  /** Gzip the chunks travel in; every chunk of a message must use the same. */
  readonly contentEncoding?: TransferEncoding;
  readonly subject?: string;
  readonly localId?: string;
  readonly fileName?: string;
  readonly checksum?: string;
  readonly contentType?: string;
  /** Chunks of the whole message (default 1); upload 2..N with uploadChunk. */
  readonly totalChunks?: number;
  /** Runs before every try of a one-chunk send after the first (see the `same-token` retry policy). */
  readonly beforeRetry?: () => Promise<void>;
}

export interface ChunkUploadOptions {
  /** Bytes in the body when it is a stream; sent as Content-Length (else chunked encoding). Ignored for gzip. */
  readonly size?: number;
  /** Must be what chunk 1 of the message used. */
  readonly contentEncoding?: TransferEncoding;
}

export interface RawChunkDownload {
  /** 206 while more chunks follow, 200 for the last. */
  readonly status: number;
  readonly metadata: MessageMetadata;
  /** `gzip` when the body is gzipped (the caller gunzips it), else undefined. */
  readonly contentEncoding: TransferEncoding;
  /** Content-Length: the bytes `body` should deliver, when the server said. */
  readonly contentLength: number | undefined;
  /** The chunk as it came over the wire. The caller must consume it. */
  readonly body: Readable;
}

/** The v2 tracking body (snake_case); fields beyond these pass through. */
export interface TrackingInfo {
  readonly message_id: string;
  readonly status: string;
  readonly local_id?: string | null;
  readonly workflow_id?: string;
  readonly sender?: string | null;
  readonly recipient?: string;
  readonly filename?: string | null;
  readonly file_size?: number;
  readonly subject?: string | null;
  readonly chunk_count?: number;
  /** mex-Content-Checksum as sent. */
  readonly checksum?: string | null;
  /** meshbox, while uploading: the chunk numbers the server holds (to resume an upload). */
  readonly stored_chunks?: readonly number[];
  /** meshbox, while uploading: the size as stored of each of stored_chunks (gzip chunks: compressed). */
  readonly stored_chunk_bytes?: readonly number[];
  /** meshbox, while uploading: `gzip` when its chunks came gzipped (sent with --gzip), else null. */
  readonly content_encoding?: string | null;
  readonly message_type?: string;
  readonly status_code?: string;
  readonly status_event?: string;
  readonly status_description?: string;
  readonly status_success?: boolean;
  readonly status_timestamp?: string | null;
  readonly upload_timestamp?: string | null;
  /** meshbox: when the message was complete and delivered, null while it never was (MESH's has no such field). */
  readonly accepted_timestamp?: string | null;
  readonly acknowledged_timestamp?: string | null;
  /** When the message leaves the recipient's inbox unacknowledged (null until accepted). */
  readonly expiry_time?: string | null;
  readonly [field: string]: unknown;
}

/** The tracking fields named above, not the index signature: a field renamed on the server fails the type check where it is read. */
export type TrackingField = keyof { [Field in keyof TrackingInfo as string extends Field ? never : Field]: TrackingInfo[Field] };

/** A mailbox found by endpoint lookup or workflow search. */
export interface FoundMailbox {
  readonly mailboxId: string;
  readonly mailboxName: string;
}

const OCTET_STREAM = 'application/octet-stream';
const MAX_JSON_BODY = 16 * 1024 * 1024;
/** MESH pages hold up to 500 ids: a million is more than any inbox holds. */
const MAX_INBOX_PAGES = 2_000;
/** As many ids as those pages hold: a server whose pages hold more could otherwise fill the memory. */
const MAX_INBOX_IDS = MAX_INBOX_PAGES * 500;
/** The status of a local id several messages carry (the one non-2xx answer that is not an error here). */
const MULTIPLE_CHOICES = 300;

/**
 * How far this computer's clock may be from a server's: a client further off signs tokens no
 * server takes (meshbox takes them within 2 hours of its own time).
 */
const CLOCK_ALLOWANCE_MS = 2 * 60 * 60_000;

/**
 * A MESH mailbox client (API v2) over mutual TLS. Every request carries a freshly built
 * NHSMESH token; one keep-alive agent holds the client certificate. Call close() when done.
 */
export class MeshClient {
  readonly mailboxId: string;
  /** Retries after a failed attempt (what the transport uses; chunk downloads use it as well). */
  readonly retries: number;
  /** First backoff delay in ms. */
  readonly retryDelayMs: number;
  /** Ends what the client is doing (chunk downloads wait on it between their own retries too). */
  readonly signal: AbortSignal | undefined;
  /** When the client certificate expires (undefined when it cannot be read here: the handshake will say). */
  readonly certificateNotAfter: Date | undefined;
  readonly #certificateNotBefore: Date | undefined;
  readonly #certificateSource: string;
  readonly #transport: HttpsTransport;
  readonly #mailboxPath: string;

  constructor(settings: ConnectionSettings, options: ClientOptions = {}) {
    this.mailboxId = settings.mailboxId.toUpperCase();
    this.retries = options.retries ?? DEFAULT_RETRIES;
    this.retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
    this.signal = options.signal;
    const dates = certificateDates(settings.certPem);
    this.certificateNotAfter = dates?.notAfter;
    this.#certificateNotBefore = dates?.notBefore;
    this.#certificateSource = settings.certificateSource ?? 'the client certificate';
    this.#mailboxPath = `${MESH_PATH_PREFIX}/${encodeURIComponent(this.mailboxId)}`;
    const credentials = { mailboxId: this.mailboxId, password: settings.password, sharedKey: settings.sharedKey };
    this.#transport = new HttpsTransport({
      origin: new URL(settings.url).origin,
      certPem: settings.certPem,
      keyPem: settings.keyPem,
      caPem: settings.caPem,
      attemptHeaders: () => ({
        [MeshHeaders.authorization]: buildAuthorizationHeader(credentials),
        Accept: MESH_V2_MEDIA_TYPE,
      }),
      retries: this.retries,
      retryDelayMs: this.retryDelayMs,
      ...(settings.idleTimeoutMs ? { idleTimeoutMs: settings.idleTimeoutMs } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onRetryWait ? { onRetryWait: options.onRetryWait } : {}),
      beforeEachRequest: () => this.#refuseCertificateOutOfDates(),
      likelyRefusal: () => this.#certificateDatesProblem(0),
    });
  }

  /** Validates the mailbox (MESH asks clients to do this at start and daily), reporting what we run on. */
  async handshake(): Promise<void> {
    const response = await this.#request('POST', '', 'idempotent', {
      [MeshHeaders.clientVersion]: CLIENT_VERSION,
      [MeshHeaders.osName]: osType(),
      [MeshHeaders.osVersion]: release(),
      [MeshHeaders.osArchitecture]: arch(),
    });
    response.body.resume();
  }

  /** Sends a message (its chunk 1) and returns the id the server gave it. */
  async sendMessage(options: SendOptions): Promise<string> {
    const totalChunks = options.totalChunks ?? 1;
    const optional: Record<string, string | undefined> = {
      [MeshHeaders.subject]: options.subject,
      [MeshHeaders.localId]: options.localId,
      [MeshHeaders.fileName]: options.fileName,
      [MeshHeaders.contentChecksum]: options.checksum,
    };
    const headers: Record<string, string> = {
      [MeshHeaders.to]: options.to.toUpperCase(),
      [MeshHeaders.workflowId]: options.workflowId,
      [MeshHeaders.chunkRange]: `1:${totalChunks}`,
      'Content-Type': options.contentType ?? OCTET_STREAM,
      ...bodyHeaders(options.size, options.contentEncoding),
    };
    for (const [name, value] of Object.entries(optional)) {
      if (value !== undefined && value !== '') headers[name] = value;
    }
    // Sending creates a message. A single chunk is repeated (with its token) when the server
    // cannot have acted on it, or, when it may have, if the server tells a repeated send its
    // first try's message: a duplicate would be delivered. Chunk 1 of several is so repeated too
    // where the server does that (meshbox): a duplicate left by a lost answer is never complete, so
    // never delivered, but it carries the local id, which tracking then finds on several messages,
    // unable to tell which went (dispatch gives the file up). Elsewhere (MESH) it is repeated like
    // any chunk, with a new token, and such a duplicate expires.
    const retry = totalChunks === 1 ? 'same-token' : 'same-token-or-fresh';
    const request = transportRequest('POST', `${this.#mailboxPath}/outbox`, retry, headers, options.body);
    const answer = await this.#transport
      .sendForText({ ...request, repeatable: () => this.#idempotentSends(), ...(options.beforeRetry ? { beforeRetry: options.beforeRetry } : {}) }, MAX_JSON_BODY)
      .catch((error: unknown) => {
        // Only a 2xx is read: the server took the send, whatever its body.
        throw error instanceof AnswerTooLargeError ? new AcceptedWithoutIdError(error.status, error) : error;
      });
    // A 2xx is the server's word that it took the send, whatever became of the id in it.
    try {
      const body = parseJson<{ message_id?: unknown; messageID?: unknown } | null>(answer);
      const messageId = body?.message_id ?? body?.messageID;
      if (messageId === undefined) throw new Error('the server accepted the message but returned no message id');
      return checkedMessageId(messageId, 'what the server returned as the new message id');
    } catch (unreadable) {
      throw new AcceptedWithoutIdError(answer.status, unreadable as Error);
    }
  }

  /** Uploads chunk n (2..total) of a message. The server accepts a repeated chunk, so this retries. */
  async uploadChunk(messageId: string, chunkNumber: number, totalChunks: number, body: ChunkBody, options: ChunkUploadOptions = {}): Promise<void> {
    const response = await this.#request(
      'POST',
      `/outbox/${encodeURIComponent(messageId)}/${chunkNumber}`,
      'idempotent',
      {
        [MeshHeaders.chunkRange]: `${chunkNumber}:${totalChunks}`,
        'Content-Type': OCTET_STREAM,
        ...bodyHeaders(options.size, options.contentEncoding),
      },
      body,
    );
    response.body.resume();
  }

  /** Message ids ready to download, oldest first, following the server's pages (links.next). */
  async *inbox(options: InboxOptions = {}): AsyncGenerator<string> {
    const query = new URLSearchParams();
    if (options.maxResults !== undefined) query.set('max_results', String(options.maxResults));
    if (options.workflowFilter !== undefined) query.set('workflow_filter', options.workflowFilter);
    let path: string | undefined = `${this.#mailboxPath}/inbox${query.size > 0 ? `?${query.toString()}` : ''}`;
    const seen = new Set<string>();
    let listed = 0;
    while (path !== undefined) {
      // A server repeating a page link, or paging without end, would otherwise keep us here for ever.
      if (seen.has(path)) throw new Error(`the server's inbox paging repeats ${path}`);
      if (seen.size >= MAX_INBOX_PAGES) throw new Error(`the server's inbox paging did not end after ${MAX_INBOX_PAGES} pages`);
      seen.add(path);
      const page = await this.#json<{ messages?: unknown; links?: { next?: unknown } } | null>('GET', path, 'idempotent');
      const ids = page?.messages;
      if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) {
        throw new Error(`the server's inbox page is not a MESH inbox listing (no list of message ids): ${path}`);
      }
      listed += ids.length;
      if (listed > MAX_INBOX_IDS) throw new Error(`the server's inbox listing holds more than ${MAX_INBOX_IDS} message ids`);
      yield* ids as string[];
      const next: unknown = page?.links?.next;
      path = typeof next === 'string' && next !== '' ? this.#samePath(next) : undefined;
    }
  }

  /** Every message id in the inbox (all pages). */
  async listInbox(options: InboxOptions = {}): Promise<string[]> {
    const ids: string[] = [];
    for await (const id of this.inbox(options)) ids.push(id);
    return ids;
  }

  async count(): Promise<number> {
    const body = await this.#json<{ count?: unknown } | null>('GET', `${this.#mailboxPath}/count`, 'idempotent');
    const count = body?.count;
    if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) throw new Error(`the server's count is not a number of messages: ${JSON.stringify(count)}`);
    return count;
  }

  /** A message's metadata without its content. */
  async head(messageId: string): Promise<MessageMetadata> {
    const response = await this.#request('HEAD', `/inbox/${encodeURIComponent(messageId)}`, 'idempotent');
    response.body.resume();
    return metadataFromHeaders(response.headers);
  }

  /**
   * Chunk n as it travels: gzip is accepted, which saves bandwidth when the sender gzipped the
   * chunks (the server then sends them as stored); the caller gunzips (see contentEncoding).
   */
  async downloadRawChunk(messageId: string, chunkNumber: number): Promise<RawChunkDownload> {
    const suffix = chunkNumber === 1 ? '' : `/${chunkNumber}`;
    const response = await this.#request('GET', `/inbox/${encodeURIComponent(messageId)}${suffix}`, 'idempotent', {
      'Accept-Encoding': 'gzip',
    });
    const encoding = (response.headers['content-encoding'] ?? '').trim().toLowerCase();
    if (encoding !== '' && encoding !== 'identity' && encoding !== 'gzip') {
      response.body.destroy();
      throw new Error(`the server sent chunk ${chunkNumber} in an encoding we did not ask for: ${encoding}`);
    }
    const length = response.headers['content-length'];
    return {
      status: response.status,
      metadata: metadataFromHeaders(response.headers),
      contentEncoding: encoding === 'gzip' ? 'gzip' : undefined,
      contentLength: length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined,
      body: response.body,
    };
  }

  /** Acknowledges a downloaded message: it leaves the inbox. */
  async acknowledge(messageId: string): Promise<void> {
    const response = await this.#request('PUT', `/inbox/${encodeURIComponent(messageId)}/status/acknowledged`, 'idempotent');
    response.body.resume();
  }

  /** Tracking of a message this mailbox sent. */
  async track(messageId: string): Promise<TrackingInfo> {
    const query = new URLSearchParams({ messageID: messageId });
    const tracking = await this.#json<TrackingInfo | null>('GET', `${this.#mailboxPath}/outbox/tracking?${query.toString()}`, 'idempotent');
    // What follows trusts it: a resume uploads to its id, dispatch names files after it.
    if (typeof tracking?.message_id !== 'string' || tracking.message_id.toUpperCase() !== messageId.toUpperCase()) {
      throw new Error(`asked to track message ${messageId}, the server answered about ${JSON.stringify(tracking?.message_id)}`);
    }
    if (typeof tracking.status !== 'string') throw new Error(`the server's tracking of ${messageId} has no status`);
    return tracking;
  }

  /**
   * Tracking of a message this mailbox sent in MESH's v1 form (camelCase, title-case status),
   * which has what MESH's v2 form lacks: chunkCount, checksum, fileSize, subject, sender.
   */
  async trackV1(messageId: string): Promise<Readonly<Record<string, unknown>>> {
    const query = new URLSearchParams({ messageID: messageId });
    const path = `${this.#mailboxPath}/outbox/tracking?${query.toString()}`;
    const tracking = await this.#json<Record<string, unknown> | null>('GET', path, 'idempotent', { Accept: MESH_V1_MEDIA_TYPE });
    const answeredAbout = tracking?.messageId;
    if (typeof answeredAbout !== 'string' || answeredAbout.toUpperCase() !== messageId.toUpperCase()) {
      throw new UnexpectedAnswerError(`asked to track message ${messageId} (v1), the server answered about ${JSON.stringify(answeredAbout)}`);
    }
    return tracking!;
  }

  /**
   * The id of the message this mailbox sent with a local id: a MeshClientError with status 404
   * when none carries it, 300 when several do. (MESH answers this deprecated lookup in its v1
   * form only; track the id for the rest.)
   */
  async messageIdForLocalId(localId: string): Promise<string> {
    const answer = await this.#transport.sendForText(
      {
        method: 'GET',
        path: `${this.#mailboxPath}/outbox/tracking/${encodeURIComponent(localId)}`,
        retry: 'idempotent',
        acceptStatuses: [MULTIPLE_CHOICES],
      },
      MAX_JSON_BODY,
    );
    if (answer.status === MULTIPLE_CHOICES) throw parseErrorBody(MULTIPLE_CHOICES, answer.text);
    // This route answers MESH's v1 tracking shape whatever the Accept header says.
    const body = parseJson<{ messageId?: unknown } | null>(answer);
    if (body?.messageId === undefined || body.messageId === '') throw new Error(`the server's tracking of local id ${localId} names no message`);
    return checkedMessageId(body.messageId, `the message the server tracks by local id ${localId}`);
  }

  /**
   * The mailboxes registered to receive a workflow: an organisation's, by its ODS code (MESH's
   * endpoint lookup), or without one every organisation's (workflow search).
   */
  async findRecipients(workflowId: string, odsCode?: string): Promise<FoundMailbox[]> {
    const workflow = encodeURIComponent(workflowId);
    const path = odsCode === undefined ? `/workflowsearch/${workflow}` : `/endpointlookup/${encodeURIComponent(odsCode)}/${workflow}`;
    const results = (await this.#json<{ results?: unknown } | null>('GET', `${MESH_PATH_PREFIX}${path}`, 'idempotent'))?.results;
    if (!Array.isArray(results)) throw new Error(`the server's answer to ${path} has no list of results`);
    return results.map((item: { mailbox_id?: unknown; mailbox_name?: unknown } | null) => {
      if (typeof item?.mailbox_id !== 'string') throw new Error(`the server's answer to ${path} lists a result without a mailbox_id`);
      return { mailboxId: item.mailbox_id, mailboxName: typeof item.mailbox_name === 'string' ? item.mailbox_name : '' };
    });
  }

  /** Releases the kept-alive connection so the process can exit. */
  close(): void {
    this.#transport.close();
  }

  #request(
    method: 'GET' | 'HEAD' | 'POST' | 'PUT',
    suffix: string,
    retry: RetryPolicy,
    headers: Record<string, string> = {},
    body?: ChunkBody,
  ): Promise<TransportResponse> {
    return this.#transport.send(transportRequest(method, `${this.#mailboxPath}${suffix}`, retry, headers, body));
  }

  /**
   * The server refuses a certificate past its end (or before its start) in the TLS handshake,
   * and a client is told no more than that the connection closed: said here instead, before
   * connecting, at every request (a watch runs on past its certificate's end). By this
   * computer's clock, so only past CLOCK_ALLOWANCE_MS: nearer its dates, the server's clock decides.
   */
  #refuseCertificateOutOfDates(): void {
    const problem = this.#certificateDatesProblem(CLOCK_ALLOWANCE_MS);
    if (problem) throw new Error(problem);
  }

  /** The client certificate out of its dates by this computer's clock, give or take `allowanceMs`, said as such (undefined: within them). */
  #certificateDatesProblem(allowanceMs: number): string | undefined {
    const now = Date.now();
    if (this.certificateNotAfter && now > this.certificateNotAfter.getTime() + allowanceMs) {
      return (
        `${this.#certificateSource} expired on ${this.certificateNotAfter.toISOString()}, and the server refuses it: ` +
        'ask your MESH administrator for a new one (meshbox cert request makes the request)'
      );
    }
    if (this.#certificateNotBefore && now < this.#certificateNotBefore.getTime() - allowanceMs) {
      return `${this.#certificateSource} is valid only from ${this.#certificateNotBefore.toISOString()}: is this computer's clock right?`;
    }
    return undefined;
  }

  /**
   * Whether the server answers a send repeated with its token with the first try's message
   * (meshbox says so in its _ping). Asked each time a send's answer is lost, which is rare: an
   * answer kept would outlive a server that was restarting (and failing its _ping) or replaced.
   */
  #idempotentSends(): Promise<boolean> {
    return this.#json<{ idempotent_sends?: unknown } | null>('GET', `${MESH_PATH_PREFIX}/_ping`, 'idempotent').then(
      (body) => body?.idempotent_sends === true,
      () => false,
    );
  }

  /** A JSON answer, read whole within the attempt: one cut off part-way is asked again as the retry policy allows. */
  async #json<T>(method: 'GET' | 'POST', path: string, retry: RetryPolicy, headers: Record<string, string> = {}, body?: ChunkBody): Promise<T> {
    return parseJson<T>(await this.#transport.sendForText(transportRequest(method, path, retry, headers, body), MAX_JSON_BODY));
  }

  /** links.next is root-relative; refuse one that would send our credentials elsewhere. */
  #samePath(link: string): string {
    const url = new URL(link, this.#transport.origin);
    if (url.origin !== this.#transport.origin) throw new Error(`the server's inbox link points elsewhere: ${link}`);
    return `${url.pathname}${url.search}`;
  }
}

/** Gzip goes without Content-Length (its size is known only once compressed: chunked encoding). */
function bodyHeaders(size: number | undefined, encoding: TransferEncoding): Record<string, string> {
  if (encoding === 'gzip') return { 'Content-Encoding': 'gzip' };
  return size === undefined ? {} : { 'Content-Length': String(size) };
}

function transportRequest(method: TransportRequest['method'], path: string, retry: RetryPolicy, headers: Record<string, string>, body: ChunkBody | undefined): TransportRequest {
  return body === undefined ? { method, path, retry, headers } : { method, path, retry, headers, body };
}

function parseJson<T>(answer: TransportText): T {
  try {
    return JSON.parse(answer.text) as T;
  } catch {
    throw new NotJsonError(answer.status, answer.text.slice(0, 200));
  }
}

function certificateDates(certPem: string): { readonly notBefore: Date; readonly notAfter: Date } | undefined {
  try {
    return describeCertificate(certPem);
  } catch {
    return undefined;
  }
}
