import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, request } from 'node:http';

/** An answer of the real S3 server, read whole. */
export interface S3Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export interface S3ErrorProxy {
  readonly port: number;
  /** Answers the next `times` requests of `method` whose path matches with S3's error `code` and `status`, instead of passing them on (a HEAD's without the error body, as S3 answers it). */
  readonly fail: (method: string, path: RegExp, status: number, code: string, times?: number) => void;
  /** Passes the next `times` requests of `method` whose path matches on, and answers what `change` makes of the real answer (headers of its own: `chunked` leaves Content-Length out). */
  readonly alter: (method: string, path: RegExp, change: (real: S3Answer) => S3Answer & { readonly chunked?: boolean }, times?: number) => void;
  /** Drops every rule given: requests pass on to the real server again. */
  readonly clear: () => void;
  /** Requests seen so far, as `METHOD path`. */
  readonly seen: readonly string[];
  readonly close: () => Promise<void>;
}

interface Rule {
  readonly method: string;
  readonly path: RegExp;
  times: number;
  readonly answer: { readonly status: number; readonly code: string } | ((real: S3Answer) => S3Answer & { readonly chunked?: boolean });
}

/** An HTTP proxy to the real local S3 server that answers chosen requests with an S3 error (503 SlowDown, 500 InternalError), or alters their real answers. */
export async function startS3ErrorProxy(targetPort: number): Promise<S3ErrorProxy> {
  const rules: Rule[] = [];
  const seen: string[] = [];
  const server = createServer((incoming, answer) => {
    seen.push(`${incoming.method} ${incoming.url}`);
    const rule = rules.find((each) => each.times > 0 && each.method === incoming.method && each.path.test(incoming.url ?? ''));
    if (rule) rule.times -= 1;
    if (rule && typeof rule.answer !== 'function') {
      incoming.resume();
      answer.writeHead(rule.answer.status, { 'content-type': 'application/xml' });
      answer.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${rule.answer.code}</Code><Message>injected</Message></Error>`);
      return;
    }
    const change = typeof rule?.answer === 'function' ? rule.answer : undefined;
    const upstream = request({ host: '127.0.0.1', port: targetPort, method: incoming.method, path: incoming.url, headers: incoming.headers }, (response) => {
      if (!change) {
        answer.writeHead(response.statusCode ?? 502, response.headers);
        response.pipe(answer);
        return;
      }
      const parts: Buffer[] = [];
      response.on('data', (part: Buffer) => parts.push(part));
      response.on('end', () => {
        const altered = change({ status: response.statusCode ?? 502, headers: response.headers, body: Buffer.concat(parts) });
        const { 'content-length': _length, 'transfer-encoding': _coding, ...headers } = altered.headers;
        answer.writeHead(altered.status, altered.chunked ? headers : { ...headers, 'content-length': String(altered.body.length) });
        // In two writes: chunked, the answer then comes in more than one piece.
        answer.write(altered.body.subarray(0, 1000));
        answer.end(altered.body.subarray(1000));
      });
    });
    upstream.on('error', () => answer.destroy());
    incoming.pipe(upstream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    fail: (method, path, status, code, times = Number.POSITIVE_INFINITY) => rules.push({ method, path, answer: { status, code }, times }),
    alter: (method, path, change, times = Number.POSITIVE_INFINITY) => rules.push({ method, path, answer: change, times }),
    clear: () => rules.splice(0),
    seen,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
