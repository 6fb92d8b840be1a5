import { once } from 'node:events';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type CertificateAndKey, issueServerCertificate } from '../../../shared/src/pki/index.ts';

/**
 * What the proxy does with one request:
 * - pass: forward it, stream the answer back;
 * - answerLost: forward it (the server acts on it), read the answer, never pass it on (the CLI hangs);
 * - hold: keep the whole request without forwarding it (a server that has it but has not acted
 *   yet), until `releaseHeld()` forwards it;
 * - cutBody: forward it, pass on the answer's headers and `bytes` of its body, then stall;
 * - answer: answer it itself, 200 with that JSON (a server other than meshbox, say);
 * - rewrite: forward it, pass on the answer with its body as `rewrite` makes it (a server that
 *   answers otherwise: one without meshbox's own fields, say).
 */
export type ProxyAction =
  | 'pass'
  | 'answerLost'
  | 'hold'
  | { readonly cutBody: number }
  | { readonly answer: object }
  | { readonly rewrite: (body: Buffer) => Buffer };

export interface ProxyEvent {
  readonly method: string;
  readonly url: string;
  readonly action: ProxyAction;
  /** The upstream status, once known (not for hold). */
  readonly status?: number;
}

export interface StallProxy {
  readonly origin: string;
  /** Every request seen, in order, with what was done with it. */
  readonly events: ProxyEvent[];
  /** Resolves once a request matching `test` has been handled with a non-pass action (answer read upstream, or held). */
  readonly stalled: (test: (event: ProxyEvent) => boolean) => Promise<ProxyEvent>;
  /** Forwards the requests held so far to the server; resolves with their statuses. */
  readonly releaseHeld: () => Promise<number[]>;
  readonly close: () => Promise<void>;
}

interface Held {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/**
 * A TLS-terminating HTTP proxy in front of the real test server: it presents a certificate of
 * the test CA to the CLI, and forwards each request over mutual TLS as `client` (the mailbox's
 * own certificate), so the server sees the CLI's request, token and all. `decide` picks what
 * happens to each request.
 */
export async function startStallProxy(
  ca: CertificateAndKey,
  upstreamOrigin: string,
  client: { readonly certPem: string; readonly keyPem: string; readonly caPem: string },
  decide: (method: string, url: string) => ProxyAction,
): Promise<StallProxy> {
  const certificate = issueServerCertificate({ ca, commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const upstream = new URL(upstreamOrigin);
  const events: ProxyEvent[] = [];
  const waiters: { test: (event: ProxyEvent) => boolean; done: (event: ProxyEvent) => void }[] = [];
  const held: Held[] = [];
  const hanging = new Set<ServerResponse>();

  const notify = (event: ProxyEvent): void => {
    events.push(event);
    if (event.action === 'pass') return;
    for (const waiter of [...waiters]) {
      if (waiter.test(event)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.done(event);
      }
    }
  };

  const forward = (method: string, url: string, headers: IncomingHttpHeaders, body: Buffer): Promise<IncomingMessage> =>
    new Promise((resolve, reject) => {
      const outgoing = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method,
          path: url,
          headers: (() => {
            const copy: Record<string, unknown> = { ...headers, host: upstream.host, 'content-length': String(body.length) };
            delete copy['transfer-encoding'];
            delete copy.connection;
            return copy as never;
          })(),
          cert: client.certPem,
          key: client.keyPem,
          ca: client.caPem,
          agent: false,
        },
        resolve,
      );
      outgoing.on('error', reject);
      outgoing.end(body);
    });

  const handle = async (incoming: IncomingMessage, body: Buffer, response: ServerResponse): Promise<void> => {
    const method = incoming.method ?? 'GET';
    const url = incoming.url ?? '/';
    const action = decide(method, url);
    const headers = { ...incoming.headers };
    delete headers['transfer-encoding'];
    if (action === 'hold') {
      held.push({ method, url, headers, body });
      hanging.add(response);
      notify({ method, url, action });
      return;
    }
    if (typeof action === 'object' && 'answer' in action) {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(action.answer));
      notify({ method, url, action, status: 200 });
      return;
    }
    const answer = await forward(method, url, headers, body);
    if (action === 'answerLost') {
      answer.resume();
      await once(answer, 'end');
      hanging.add(response);
      notify({ method, url, action, status: answer.statusCode });
      return;
    }
    const answerHeaders = { ...answer.headers };
    delete answerHeaders.connection;
    delete answerHeaders['keep-alive'];
    if (action === 'pass') {
      response.writeHead(answer.statusCode ?? 502, answerHeaders);
      answer.pipe(response);
      notify({ method, url, action, status: answer.statusCode });
      return;
    }
    if ('rewrite' in action) {
      const parts: Buffer[] = [];
      for await (const part of answer) parts.push(part as Buffer);
      const rewritten = action.rewrite(Buffer.concat(parts));
      delete answerHeaders['transfer-encoding'];
      response.writeHead(answer.statusCode ?? 502, { ...answerHeaders, 'content-length': String(rewritten.length) }).end(rewritten);
      notify({ method, url, action, status: answer.statusCode });
      return;
    }
    // cutBody: headers and the first bytes of the body, then nothing more.
    const { cutBody } = action;
    response.writeHead(answer.statusCode ?? 502, answerHeaders);
    let sent = 0;
    hanging.add(response);
    answer.on('data', (part: Buffer) => {
      if (sent >= cutBody) return;
      const piece = part.subarray(0, cutBody - sent);
      sent += piece.length;
      response.write(piece);
      if (sent >= cutBody) notify({ method, url, action, status: answer.statusCode });
    });
  };

  const proxy: Server = createServer({ cert: certificate.certPem, key: certificate.keyPem }, (incoming, response) => {
    const parts: Buffer[] = [];
    incoming.on('data', (part: Buffer) => parts.push(part));
    incoming.on('end', () => {
      handle(incoming, Buffer.concat(parts), response).catch((error: unknown) => {
        response.destroy(error as Error);
      });
    });
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  return {
    origin: `https://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    events,
    stalled: (test) => {
      const found = events.find((event) => event.action !== 'pass' && test(event));
      if (found) return Promise.resolve(found);
      return new Promise((done) => waiters.push({ test, done }));
    },
    releaseHeld: async () => {
      const statuses: number[] = [];
      for (const request of held.splice(0)) {
        const answer = await forward(request.method, request.url, request.headers, request.body);
        answer.resume();
        await once(answer, 'end');
        statuses.push(answer.statusCode ?? 0);
      }
      return statuses;
    },
    close: async () => {
      for (const response of hanging) response.destroy();
      proxy.closeAllConnections();
      proxy.close();
    },
  };
}
