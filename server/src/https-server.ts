import { createServer, type Server } from 'node:https';
import type Koa from 'koa';

export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

/**
 * Node's https server in mutual TLS: a client without a certificate signed by our CA is
 * refused in the handshake, before any HTTP is read.
 */
export function createMeshServer(app: Koa<never> | Koa, tls: TlsFiles): Server {
  const server = createServer(
    {
      cert: tls.cert,
      key: tls.key,
      ca: tls.ca,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      // Slow or silent clients must not hold sockets for ever.
      requestTimeout: 15 * 60_000,
      headersTimeout: 30_000,
      keepAliveTimeout: 65_000,
      maxHeaderSize: 32 * 1024,
    },
    app.callback(),
  );
  return server;
}
