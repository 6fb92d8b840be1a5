import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import test from 'ava';
import Koa from 'koa';
import { closeConnectionsAfterAnswers, createMeshServer } from '../src/https-server.ts';
import { createCertificateAuthority, issueMailboxCertificate, issueServerCertificate } from '../../shared/src/pki/index.ts';

test('a stop closes a connection after its last queued answer: a request pipelined behind one under way is answered too', async (t) => {
  const ca = createCertificateAuthority({ commonName: 'stopping test CA' });
  const serverCertificate = issueServerCertificate({ ca, commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const client = issueMailboxCertificate({ ca, mailboxId: 'STOPPING1' });
  const handled: string[] = [];
  const app = new Koa();
  app.use(async (ctx) => {
    handled.push(ctx.path);
    if (ctx.path === '/slow') await new Promise((resolve) => setTimeout(resolve, 400));
    ctx.body = `answer to ${ctx.path}\n`;
  });
  const server = createMeshServer(app, { cert: serverCertificate.certPem, key: serverCertificate.keyPem, ca: ca.certPem });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.closeAllConnections());
  const socket = connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port, ca: ca.certPem, cert: client.certPem, key: client.keyPem, servername: 'localhost' });
  await once(socket, 'secureConnect');
  let received = '';
  socket.on('data', (data: Buffer) => (received += data.toString()));
  socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\nPOST /send HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
  // Both requests in the server's hands, the first still being answered.
  while (handled.length < 1) await new Promise((resolve) => setTimeout(resolve, 10));
  server.close();
  closeConnectionsAfterAnswers(server);
  await once(socket, 'close');
  t.deepEqual(handled, ['/slow', '/send']);
  // Both answered, in order, and then the connection closed (awaited above).
  t.regex(received, /answer to \/slow[\s\S]*HTTP\/1\.1 200 OK[\s\S]*answer to \/send/);
  t.is(received.match(/HTTP\/1\.1 /g)?.length, 2);
});
