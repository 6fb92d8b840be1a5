import type { ClientRequest, IncomingMessage } from 'node:http';
import { type Agent, request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { buildAuthorizationHeader } from '../../shared/src/protocol/index.ts';
import type { KeyPair, TestMailbox } from './harness.ts';

/** What a client needs to know of a server: where it is, its CA, the environment's shared key. */
export interface Endpoint {
  readonly origin: string;
  readonly caPem: string;
  readonly sharedKey: string;
  /** Resolves once the server has done what its requests go on doing after their answers (a server in this process; a server process gives no such sign). */
  readonly settled?: () => Promise<void>;
}

export interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  /** Header names and values as they came, names in the server's own letter case (`headers` lower-cases them). */
  readonly rawHeaders: readonly string[];
  readonly body: Buffer;
  // any: tests read response fields freely and assert on them; a wrong shape fails the assertion.
  readonly json: () => any;
}

export interface RawRequest {
  readonly method?: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer | string;
  /** Client certificate; `null` sends none. */
  readonly clientCertificate?: KeyPair | null;
  /** Connections to reuse (kept alive, their TLS handshakes done); by default a new one for the request. */
  readonly agent?: Agent;
}

/** One HTTPS request with full control over certificate, headers and body. */
export function rawRequest(server: Endpoint, request: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const url = new URL(request.path, server.origin);
    const certificate = request.clientCertificate === null ? {} : { cert: request.clientCertificate?.certPem, key: request.clientCertificate?.keyPem };
    const req = httpsRequest(
      url,
      {
        method: request.method ?? 'GET',
        headers: request.headers ?? {},
        ca: server.caPem,
        ...certificate,
        agent: request.agent ?? false,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (part: Buffer) => parts.push(part));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(parts);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            body,
            json: () => JSON.parse(body.toString('utf8')),
          });
        });
      },
    );
    req.on('error', reject);
    req.end(request.body);
  });
}

export interface MailboxRequest extends Omit<RawRequest, 'clientCertificate'> {
  readonly accept?: 'v1' | 'v2';
  readonly clientCertificate?: KeyPair | null;
  /** Overrides the Authorization header (a replay or a forgery). */
  readonly authorization?: string;
}

/** A request as a mailbox makes it: its certificate, a fresh NHSMESH token, the MESH Accept header. */
export function mailboxRequest(server: Endpoint, mailbox: TestMailbox, request: MailboxRequest): Promise<RawResponse> {
  const authorization =
    request.authorization ??
    buildAuthorizationHeader({ mailboxId: mailbox.id, password: mailbox.password, sharedKey: server.sharedKey });
  const accept = request.accept === 'v1' ? 'application/json' : 'application/vnd.mesh.v2+json';
  return rawRequest(server, {
    ...request,
    clientCertificate: request.clientCertificate === undefined ? mailbox : request.clientCertificate,
    headers: { accept, authorization, ...request.headers },
  });
}

/** Sends a message (or, given `mex-Chunk-Range: 1:N`, chunk 1 of several) and returns its id. */
export async function sendMessage(
  server: Endpoint,
  from: TestMailbox,
  to: TestMailbox,
  body: Buffer | string,
  headers: Record<string, string> = {},
): Promise<string> {
  const response = await mailboxRequest(server, from, {
    method: 'POST',
    path: `/messageexchange/${from.id}/outbox`,
    headers: { 'mex-To': to.id, 'mex-WorkflowID': 'PATH_RESULTS', 'content-type': 'application/octet-stream', ...headers },
    body,
  });
  if (response.status !== 202) throw new Error(`send failed: ${response.status} ${response.body.toString()}`);
  // A send's delivery and the move of its first lifecycle check complete after its answer: tests that look next see them done.
  await server.settled?.();
  return (response.json() as { message_id: string }).message_id;
}

/**
 * Opens a mailbox request and leaves writing the body to the caller: for bodies sent in
 * parts, cut off, or streamed (a fresh token unless one is given; its own connection).
 */
export function openMailboxRequest(
  endpoint: Endpoint,
  mailbox: TestMailbox,
  request: { readonly method: string; readonly path: string; readonly headers?: Record<string, string>; readonly authorization?: string },
): ClientRequest {
  return httpsRequest(new URL(request.path, endpoint.origin), {
    method: request.method,
    ca: endpoint.caPem,
    cert: mailbox.certPem,
    key: mailbox.keyPem,
    agent: false,
    headers: {
      accept: 'application/vnd.mesh.v2+json',
      authorization:
        request.authorization ??
        buildAuthorizationHeader({ mailboxId: mailbox.id, password: mailbox.password, sharedKey: endpoint.sharedKey }),
      ...request.headers,
    },
  });
}

/** A mailbox request whose body is streamed and whose response is returned unread (for large payloads). */
export function streamingRequest(
  endpoint: Endpoint,
  mailbox: TestMailbox,
  request: { readonly method: string; readonly path: string; readonly headers?: Record<string, string>; readonly body?: Readable },
): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const req = openMailboxRequest(endpoint, mailbox, request);
    req.on('response', resolve);
    req.on('error', reject);
    if (request.body) request.body.pipe(req);
    else req.end();
  });
}

export async function readText(response: IncomingMessage): Promise<string> {
  let text = '';
  for await (const part of response) text += (part as Buffer).toString();
  return text;
}
