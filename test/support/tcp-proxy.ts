import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  readonly port: number;
  /** The backend "goes away": open connections are cut and new ones refused. */
  readonly cut: () => Promise<void>;
  /** The backend is back, on the same port. */
  readonly restore: () => Promise<void>;
  /** The backend's answers wait (requests still reach it) until `releaseAnswers`: a slow backend. */
  readonly holdAnswers: () => void;
  readonly releaseAnswers: () => void;
  /** Bytes passed on to the backend so far. */
  readonly bytesToBackend: () => number;
  /** The connections open now go silent for good (a peer gone without a word, a firewall dropping them); new ones work. */
  readonly silenceOpenConnections: () => void;
  /** New connections go to this port from now on (a failover behind one address); open ones stay where they are. */
  readonly retarget: (port: number) => void;
  readonly close: () => Promise<void>;
}

/** A loopback TCP proxy to a real service, to take it away and bring it back during a test. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  let target = targetPort;
  const sockets = new Set<Socket>();
  const upstreams = new Set<Socket>();
  let holding = false;
  let bytesToBackend = 0;
  let server: Server | undefined;
  let port = 0;
  const listen = async (): Promise<void> => {
    server = createServer((client) => {
      const upstream = connect(target, '127.0.0.1');
      upstreams.add(upstream);
      upstream.on('close', () => upstreams.delete(upstream));
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.on('data', (data: Buffer) => (bytesToBackend += data.length));
      client.pipe(upstream).pipe(client);
      if (holding) upstream.pause();
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
  const holdAnswers = (): void => {
    holding = true;
    for (const upstream of upstreams) upstream.pause();
  };
  const releaseAnswers = (): void => {
    holding = false;
    for (const upstream of upstreams) upstream.resume();
  };
  return {
    port,
    cut: stop,
    restore: listen,
    close: stop,
    holdAnswers,
    releaseAnswers,
    bytesToBackend: () => bytesToBackend,
    silenceOpenConnections: () => {
      for (const upstream of upstreams) upstream.pause();
    },
    retarget: (port) => {
      target = port;
    },
  };
}
