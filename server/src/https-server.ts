import { constants, createHash, hkdfSync, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { ClientConnectionLimit } from './http/client-connections.ts';
import { peerCertificate } from './http/peer-certificate.ts';
import type { Metrics } from './metrics.ts';
import type Koa from 'koa';
import { quietRepeats } from './quiet-repeats.ts';

/** The server's TLS: its files, read, and how its sessions are resumed. */
export interface TlsSettings {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  /** PEM CRL: certificates it lists are refused in the TLS handshake. */
  readonly crl?: string | undefined;
  /**
   * The secret TLS session tickets are sealed under (MESHBOX_TLS_TICKET_KEY_FILE), shared by the
   * processes behind one address so that a client resumes its session with any of them.
   * Undefined: this process's own, made up at start.
   */
  readonly ticketSecret?: Buffer | undefined;
  /** How long a session may be resumed (MESHBOX_TLS_SESSION_SECONDS); undefined: Node's 300. */
  readonly sessionSeconds?: number | undefined;
}

const PROCESS_TICKET_SECRET = randomBytes(32);

/**
 * What a session is bound to: the CAs trusted and the CRL. A resumption skips the certificate
 * check, so a session begun under other ones (a certificate of a CA no longer trusted, or one
 * revoked since) must not resume. Node's default context is the process's command line, which
 * would also keep processes started otherwise (`serve --role api`, `npm start`) from resuming
 * each other's sessions.
 */
function trustedAs(tls: TlsSettings): Buffer {
  return createHash('sha256').update(tls.ca).update('\0').update(tls.crl ?? '').digest();
}

/** The session-ticket keys: processes with the same secret and trust seal and open each other's tickets. */
function ticketKeysFor(secret: Buffer, trust: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, trust, 'meshbox TLS session tickets', 48));
}

/** One CRL in PEM; a CRL file holds one per CA it covers (two during a CA rollover). */
export const CRL_PEM_BLOCK = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/g;

/**
 * TLS 1.3's suites, then TLS 1.2's with forward secrecy (ECDHE) and authenticated encryption only:
 * Node's default lets a TLS 1.2 client pick a static-RSA suite, whose recorded traffic (patient
 * data) anyone who later got the server key could read, or a SHA-1 CBC one. As Mozilla's
 * "intermediate" configuration, which every supported MESH client meets.
 */
export const CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** What the TLS side of the server is made of; given again whenever the CRL is reloaded. */
export function secureContextOptions(tls: TlsSettings) {
  const trust = trustedAs(tls);
  return {
    cert: tls.cert,
    key: tls.key,
    ca: tls.ca,
    // As a list: from one string Node loads only the first CRL, and every certificate of another CA is then refused.
    ...(tls.crl ? { crl: [...tls.crl.matchAll(CRL_PEM_BLOCK)].map((block) => block[0]) } : {}),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2' as const,
    ciphers: CIPHERS,
    honorCipherOrder: true,
    // A TLS 1.2 client may not renegotiate: each renegotiation is a full handshake the server
    // pays for on a connection already counted, and the certificate read once per connection
    // would no longer be the one the session holds. TLS 1.3 has none.
    secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
    sessionIdContext: trust.toString('hex').slice(0, 32),
    ticketKeys: ticketKeysFor(tls.ticketSecret ?? PROCESS_TICKET_SECRET, trust),
    ...(tls.sessionSeconds ? { sessionTimeout: tls.sessionSeconds } : {}),
  };
}

/** How long a client may take: slow or silent clients must not hold sockets for ever. */
export interface ClientTimeouts {
  /** To send all request headers. */
  readonly headersMs: number;
  /** To send the whole request, body included (a 100 MB chunk on a slow line needs minutes). */
  readonly requestMs: number;
  /**
   * Without a byte moving either way, mid-request or mid-answer: a client that stops reading a
   * download would otherwise hold it, and its connection to object storage, for ever.
   */
  readonly idleMs: number;
}

/** TCP retransmits a lost packet after 1 s, then 2 s, then 4 s. */
const MIN_HANDSHAKE_TIMEOUT_MS = 10_000;

export const DEFAULT_CLIENT_TIMEOUTS: ClientTimeouts = { headersMs: 30_000, requestMs: 15 * 60_000, idleMs: 120_000 };

/** Told of each failed TLS handshake, with the client's address when it is known. */
export type HandshakeFailureHandler = (error: NodeJS.ErrnoException, socket: TLSSocket, clientAddress: string | undefined) => void;

/**
 * Connections a process holds at once, handshakes under way included: each costs memory (and a
 * file descriptor) whether or not its client ever sends a request.
 */
export const DEFAULT_MAX_CONNECTIONS = 10_000;

/** Connections one client (a certificate's CN) holds to a process at once, so that one cannot take them all. */
export const DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 100;

/** How long a connection over its client's limit is kept for a first request to answer 429 (a round trip, on any line). */
const OVER_CLIENT_LIMIT_GRACE_MS = 2_000;

export interface MeshServerOptions {
  readonly timeouts?: ClientTimeouts;
  /** One connection more is closed as it arrives (MESHBOX_MAX_CONNECTIONS). */
  readonly maxConnections?: number;
  /** One connection more of the same client is refused: answered 429, or closed unused (MESHBOX_MAX_CONNECTIONS_PER_CLIENT; 0: no limit). */
  readonly maxConnectionsPerClient?: number;
  /** Told of each connection over its client's limit (refused: its requests answered 429, or closed unused), with the client's name and address. */
  readonly onClientOverLimit?: (client: string, clientAddress: string | undefined) => void;
  readonly onHandshakeFailed?: HandshakeFailureHandler;
  /** Told of each connection closed as it arrived, the server holding its maximum. */
  readonly onConnectionRefused?: (clientAddress: string | undefined) => void;
  /** Told of each request answered here without the app, which counts and logs the others: one Node's parser refused (400, 408, 431), or a CONNECT (405). */
  readonly onAnsweredRaw?: RawAnswerHandler;
}

/** Told of a request answered without the app, with the status and the connection it came on. */
export type RawAnswerHandler = (status: number, connection: Duplex) => void;

interface Exchange {
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
}

/** Per connection, the requests still being answered, oldest first: pipelined ones wait their turn. */
const answering = new WeakMap<Duplex, Exchange[]>();

/** Connections on which Node's parser met bytes it could not read: answered once, then closed. */
const unparseable = new WeakSet<Duplex>();

/** Per server, its open connections: TCP ones until their handshake is done, then the TLS ones. */
const connectionsOf = new WeakMap<Server, Set<Duplex>>();

/** Servers that are stopping: each answer closes its connection (see closeConnectionsAfterAnswers). */
const stopping = new WeakSet<Server>();

/** Connections to close after the answer to their newest request (a CRL loaded since their handshake). */
const closingAfterAnswers = new WeakSet<Duplex>();

/** Has a connection close after the answer to its newest request, those pipelined before it answered first. */
export function closeAfterAnswers(connection: Duplex): void {
  closingAfterAnswers.add(connection);
}

/** Answers this module has made close their connection (and may hand that on to a request pipelined behind them). */
const closedHere = new WeakSet<ServerResponse>();

/** Makes `response` the one that closes its connection, in place of any earlier one made so here and not yet begun. */
function closeWith(response: ServerResponse, exchanges: readonly Exchange[]): void {
  for (const { response: other } of exchanges) {
    if (other === response || !closedHere.has(other) || other.headersSent) continue;
    other.shouldKeepAlive = true;
    closedHere.delete(other);
  }
  response.shouldKeepAlive = false;
  closedHere.add(response);
}

/**
 * Node's https server in mutual TLS: a client without a certificate signed by our CA is
 * refused in the handshake, before any HTTP is read.
 */
export function createMeshServer(app: Koa<never> | Koa, tls: TlsSettings, options: MeshServerOptions = {}): Server {
  const {
    timeouts = DEFAULT_CLIENT_TIMEOUTS,
    maxConnections = DEFAULT_MAX_CONNECTIONS,
    maxConnectionsPerClient = DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
    onHandshakeFailed = () => {},
    onConnectionRefused = () => {},
    onClientOverLimit = () => {},
    onAnsweredRaw = () => {},
  } = options;
  const handle = app.callback();
  const serve = (request: IncomingMessage, response: ServerResponse): void => {
    let exchanges = answering.get(request.socket);
    if (!exchanges) answering.set(request.socket, (exchanges = []));
    const exchange = { request, response };
    exchanges.push(exchange);
    // 'close' comes once per response: its entry is there.
    response.on('close', () => {
      exchanges.splice(exchanges.indexOf(exchange), 1);
      // An answer begun before the stop promised to keep its connection: kept, it would carry
      // more requests (see closeConnectionsAfterAnswers).
      if (stopping.has(server) && exchanges.length === 0) server.closeIdleConnections();
    });
    // Behind an answer already sent as its connection's last, a pipelined request would be handled
    // and its answer never sent (a send delivered, its client told nothing): it is left unhandled,
    // for its client to send again on another connection.
    if (exchanges.some(({ response: other }) => other !== response && other.headersSent && !other.shouldKeepAlive)) return;
    // Only the newest answer closes the connection: an earlier one doing so would leave those
    // pipelined behind it, which the app handles all the same, unanswered.
    if (stopping.has(server) || closingAfterAnswers.has(request.socket)) closeWith(response, exchanges);
    void handle(request, response);
  };
  const server = createServer(
    {
      ...secureContextOptions(tls),
      // A connection that never completes its handshake (no client, or a hostile one) would hold
      // its socket for Node's 120 s; the handshake is part of getting the request's headers in,
      // though never cut shorter than a lossy long-haul link's retransmissions may need.
      handshakeTimeout: Math.max(timeouts.headersMs, MIN_HANDSHAKE_TIMEOUT_MS),
      requestTimeout: timeouts.requestMs,
      headersTimeout: timeouts.headersMs,
      // Node enforces the two above only when it checks, every this often.
      connectionsCheckingInterval: Math.min(30_000, Math.max(250, timeouts.headersMs / 4)),
      keepAliveTimeout: 65_000,
      maxHeaderSize: 32 * 1024,
      // Node would answer an HTTP/1.1 request without Host a bare 400 before the app runs: the app does it, with a MESH body.
      requireHostHeader: false,
    },
    serve,
  );
  // An Expect other than 100-continue: Node would answer a bare 417 itself; the app refuses it with a MESH body.
  server.on('checkExpectation', serve);
  const clientAddress = noteClientAddresses(server);
  const perClient = new ClientConnectionLimit(maxConnectionsPerClient);
  server.on('secureConnection', (socket: TLSSocket) => {
    // A resumption skips the certificate check, which would refuse a certificate expired since its session began.
    if (socket.isSessionReused() && (peerCertificate(socket).notAfter?.getTime() ?? 0) <= Date.now()) {
      socket.destroy();
      return;
    }
    const admission = perClient.admit(socket);
    if (admission.admitted) return;
    onClientOverLimit(admission.client, clientAddress(socket));
    // Its requests are answered 429 (refuseConnectionsOverClientLimit). One that sends none would
    // otherwise be held until the headers timeout, uncounted: a client opening connections it never
    // uses could still take all of the server's.
    setTimeout(() => {
      if (!answering.get(socket)?.length) socket.destroy();
    }, OVER_CLIENT_LIMIT_GRACE_MS).unref();
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => answerUnparseableRequest(error, socket, onAnsweredRaw));
  noteConnections(server);
  server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => onHandshakeFailed(error, socket, clientAddress(socket)));
  // Node hands CONNECT (a proxy tunnel) to this event, and without a listener drops the connection unanswered.
  server.on('connect', (_request, socket: Duplex) => {
    onAnsweredRaw(405, socket);
    answerRaw(socket, 405, 'Method Not Allowed');
  });
  // With no 'timeout' listener, Node destroys a socket idle this long.
  server.setTimeout(timeouts.idleMs);
  server.maxConnections = maxConnections;
  server.on('drop', (connection?: { readonly remoteAddress?: string }) => onConnectionRefused(connection?.remoteAddress));
  return server;
}

/** What Node's HTTP layer reports of a request it could not read (its parser's errors, and its request timeout). */
function isHttpError(error: NodeJS.ErrnoException): boolean {
  return error.code === 'ERR_HTTP_REQUEST_TIMEOUT' || (error.code?.startsWith('HPE_') ?? false);
}

/**
 * Node's HTTP parser refuses a request before Koa sees it; the client still gets a MESH error body.
 * Node reports a failed TLS handshake here too (its handshake timeout among them): there is no
 * HTTP to answer on such a connection, and an answer written to it would wait for a handshake
 * that never comes, holding the connection for ever.
 */
function answerUnparseableRequest(error: NodeJS.ErrnoException, socket: Duplex, onAnsweredRaw: RawAnswerHandler): void {
  if (!socket.writable || !isHttpError(error)) {
    socket.destroy();
    return;
  }
  // Node's parser reports every later read again: the connection gets one answer.
  if (unparseable.has(socket)) return;
  unparseable.add(socket);
  // Nothing more can be parsed from it.
  socket.pause();
  const [status, reason] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout']
        : [400, 'Bad Request'];
  const exchanges = [...(answering.get(socket) ?? [])];
  const newest = exchanges.at(-1);
  // The bad bytes are the rest of the newest request's body (a garbled chunked encoding), or a
  // request of their own after it. Either way they are answered after the requests before
  // them, in order: written at once, the error would be read as an earlier request's answer
  // (a send told 400 though it went). Then the connection closes.
  const culprit = newest && !newest.request.complete ? newest : undefined;
  afterAnswers(culprit ? exchanges.slice(0, -1) : exchanges, () => {
    if (!socket.writable) socket.destroy();
    // Its handler answered it meanwhile (one that never read the body): that answer stands.
    else if (culprit?.response.headersSent) afterAnswers([culprit], () => socket.end());
    else {
      onAnsweredRaw(status, socket);
      answerRaw(socket, status, reason);
    }
  });
}

/**
 * For a stop: the last answer queued on each connection, if not yet begun, says `Connection:
 * close` and closes the connection once sent (so does every request's answer from now on); one
 * already under way closes it after it, if no other request waits on it. Kept-alive connections
 * so carry no new requests into the stop and leave as their answers end. Node's server.close()
 * closes only the connections idle at that moment.
 */
export function closeConnectionsAfterAnswers(server: Server): void {
  stopping.add(server);
  for (const connection of connectionsOf.get(server) ?? []) {
    // The last answer queued only: one with a pipelined request behind it, closing its
    // connection, would leave the other, which the app handles all the same, unanswered.
    const exchanges = answering.get(connection) ?? [];
    const last = exchanges.at(-1);
    if (last && !last.response.headersSent) closeWith(last.response, exchanges);
  }
  server.closeIdleConnections();
}

/**
 * For a server stopping (after `close()`): closes every connection on which no request is being
 * answered. Node's closeIdleConnections leaves two kinds open that have none: one still in its
 * TLS handshake (Node's HTTP layer knows it only once it is done) and one handshaken that has
 * sent nothing since, which Node counts as a request begun. Either would hold the stop until
 * its timeout (or the deadline), and one in its handshake past the deadline too. A request
 * whose headers had not all come never reached the app: its client may send it again elsewhere.
 */
export function closeConnectionsNotAnswering(server: Server): void {
  for (const connection of connectionsOf.get(server) ?? []) {
    if (!answering.get(connection)?.length) connection.destroy();
  }
}

function noteConnections(server: Server): void {
  const open = new Set<Duplex>();
  connectionsOf.set(server, open);
  const note = (connection: Duplex): void => {
    open.add(connection);
    connection.once('close', () => open.delete(connection));
  };
  server.on('connection', note);
  server.on('secureConnection', (socket: TLSSocket) => {
    const beneath = tcpSocketBeneath(socket);
    if (beneath) open.delete(beneath);
    if (!socket.destroyed) note(socket);
  });
}

/** The TCP socket a server's TLS socket wraps: reached only through `_parent`, which Node does not type. */
export function tcpSocketBeneath(socket: TLSSocket): Duplex | undefined {
  return (socket as TLSSocket & { readonly _parent?: Duplex | null })._parent ?? undefined;
}

/** Runs `then` once every exchange's response has closed (at once when there are none). */
function afterAnswers(exchanges: readonly Exchange[], then: () => void): void {
  let open = exchanges.length;
  if (open === 0) return then();
  for (const { response } of exchanges) response.once('close', () => --open === 0 && then());
}

/** A MESH (v1) error written straight to the socket, for what never reaches Koa; the connection then closes. */
function answerRaw(socket: Duplex, status: number, reason: string): void {
  const body = JSON.stringify({ messageID: null, errorEvent: 'TRANSFER', errorCode: String(status), errorDescription: reason });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    // Closed once it is out: a request whose body broke off here then fails at once (freeing what it holds).
    () => socket.destroy(),
  );
}

/**
 * Notes each connection's client address as it opens: Node refuses an unverified certificate by
 * destroying the TLS socket (and the TCP socket beneath it) before it reports the refusal, and
 * a destroyed socket no longer knows its peer.
 */
function noteClientAddresses(server: Server): (socket: TLSSocket) => string | undefined {
  const addresses = new WeakMap<object, string>();
  server.prependListener('connection', (socket: Socket) => {
    if (socket.remoteAddress) addresses.set(socket, socket.remoteAddress);
  });
  return (socket) => {
    const beneath = tcpSocketBeneath(socket);
    return socket.remoteAddress ?? (beneath ? addresses.get(beneath) : undefined);
  };
}

/** A reason's refusals (failed handshakes, connections over the limit) are logged at most this often (a scan or a misconfigured client repeats them fast). */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

/**
 * Counts failed handshakes by reason and logs the refusals, a line per reason at most every ten
 * seconds (and, after it, how many more came meanwhile): a client refused in the handshake
 * (revoked, unknown CA, a stale CRL) sees only a closed connection, so the server's log is where
 * an operator learns why. A connection closed before the handshake ended (a load balancer's TCP
 * check, a port scan) is only counted.
 */
export function handshakeFailureReporter(
  logger: Logger,
  metrics: Metrics,
  logIntervalMs = REFUSAL_LOG_INTERVAL_MS,
): HandshakeFailureHandler {
  const log = quietRepeats(logIntervalMs);
  return (error, socket, clientAddress) => {
    // A certificate OpenSSL did not verify is refused by Node after the handshake, without an alert: why is here.
    const refusal = socket.authorizationError ?? (error.code?.startsWith('ERR_SSL') ? error.code : undefined);
    const reason = String(refusal ?? error.code ?? 'UNKNOWN');
    metrics.handshakeFailures.inc({ reason });
    if (refusal === undefined) return;
    log(
      reason,
      () => logger.info({ reason, client: clientAddress }, 'TLS handshake refused'),
      (repeats) => logger.info({ reason, repeats, seconds: logIntervalMs / 1000 }, `TLS handshake refused ${repeats} more times for this reason`),
    );
  };
}

/**
 * Counts and logs, as the app does its requests, those answered without it (a request Node's
 * parser refused, a CONNECT): an operator asked why a client gets 431 finds it, and its certificate.
 */
export function rawAnswerReporter(logger: Logger, metrics: Metrics): RawAnswerHandler {
  return (status, connection) => {
    metrics.requests.inc({ route: 'unmatched', method: 'unread', status: String(status) });
    const { commonName, serialNumber } = peerCertificate(connection as TLSSocket);
    logger.info({ status, error: String(status), certificate: { commonName, serialNumber } }, 'request');
  };
}

/**
 * Counts the connections refused for the server holding its maximum, and logs them once an
 * interval: a client refused so sees only a closed connection, and an operator must learn that
 * the limit (or a flood of connections) is why.
 */
export function connectionRefusalReporter(logger: Logger, metrics: Metrics, maxConnections: number, logIntervalMs = REFUSAL_LOG_INTERVAL_MS): (clientAddress: string | undefined) => void {
  const log = quietRepeats(logIntervalMs);
  return (clientAddress) => {
    metrics.connectionsRefused.inc();
    log(
      'full',
      () => logger.warn({ client: clientAddress, maxConnections }, 'connection refused: the server holds MESHBOX_MAX_CONNECTIONS connections'),
      (repeats) => logger.warn({ repeats, seconds: logIntervalMs / 1000, maxConnections }, `connection refused ${repeats} more times: the server holds MESHBOX_MAX_CONNECTIONS connections`),
    );
  };
}

/**
 * Counts the connections over their client's limit, and logs them per client once an interval:
 * the client is told (429, on a connection it uses), but it is the operator who must find a
 * client leaking connections.
 */
export function clientOverLimitReporter(logger: Logger, metrics: Metrics, maxConnectionsPerClient: number, logIntervalMs = REFUSAL_LOG_INTERVAL_MS): (client: string, clientAddress: string | undefined) => void {
  const log = quietRepeats(logIntervalMs);
  return (client, clientAddress) => {
    metrics.clientConnectionsRefused.inc();
    log(
      client,
      () => logger.warn({ client, address: clientAddress, maxConnectionsPerClient }, 'connection refused: its client holds MESHBOX_MAX_CONNECTIONS_PER_CLIENT connections'),
      (repeats) =>
        logger.warn({ client, repeats, seconds: logIntervalMs / 1000, maxConnectionsPerClient }, `${repeats} more connections refused: their client holds MESHBOX_MAX_CONNECTIONS_PER_CLIENT connections`),
    );
  };
}
