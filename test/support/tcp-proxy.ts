import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  /** The backend "goes away": open connections are cut and new ones refused. */
  readonly cut: () => Promise<void>;
  /** The backend is back, on the same port. */
  readonly restore: () => Promise<void>;
  readonly close: () => Promise<void>;
}

/** A loopback TCP proxy to a real service, to take it away and bring it back during a test. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = async (): Promise<void> => {
    server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  };
  const stop = async (): Promise<void> => {
    for (const socket of sockets) socket.destroy();
    if (server?.listening) {
      server.close();
      await once(server, 'close');
    }
  };
  await listen();
  return { port, cut: stop, restore: listen, close: stop };
}
