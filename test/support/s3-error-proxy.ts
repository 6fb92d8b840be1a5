import { once } from 'node:events';
import { createServer, request } from 'node:http';

export interface S3ErrorProxy {
  readonly port: number;
  /** Answers the next `times` requests of `method` whose path matches with S3's error `code` and `status`, instead of passing them on. */
  readonly fail: (method: string, path: RegExp, status: number, code: string, times?: number) => void;
  /** Requests seen so far, as `METHOD path`. */
  readonly seen: readonly string[];
  readonly close: () => Promise<void>;
}

/** An HTTP proxy to the real local S3 server that answers chosen requests with an S3 error (503 SlowDown, 500 InternalError). */
export async function startS3ErrorProxy(targetPort: number): Promise<S3ErrorProxy> {
  const rules: { method: string; path: RegExp; status: number; code: string; times: number }[] = [];
  const seen: string[] = [];
  const server = createServer((incoming, answer) => {
    seen.push(`${incoming.method} ${incoming.url}`);
    const rule = rules.find((each) => each.times > 0 && each.method === incoming.method && each.path.test(incoming.url ?? ''));
    if (rule) {
      rule.times -= 1;
      incoming.resume();
      answer.writeHead(rule.status, { 'content-type': 'application/xml' });
      answer.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${rule.code}</Code><Message>injected</Message></Error>`);
      return;
    }
    const upstream = request({ host: '127.0.0.1', port: targetPort, method: incoming.method, path: incoming.url, headers: incoming.headers }, (response) => {
      answer.writeHead(response.statusCode ?? 502, response.headers);
      response.pipe(answer);
    });
    upstream.on('error', () => answer.destroy());
    incoming.pipe(upstream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    fail: (method, path, status, code, times = Number.POSITIVE_INFINITY) => rules.push({ method, path, status, code, times }),
    seen,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
