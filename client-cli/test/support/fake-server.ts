import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type CertificateAndKey, issueServerCertificate } from '../../../shared/src/pki/index.ts';

/** Answers one request, its body already read. */
export type FakeHandler = (request: IncomingMessage, body: Buffer, response: ServerResponse) => void;

/**
 * Runs `use` against an HTTPS server answering with `handle`: a scripted stand-in for a MESH
 * server (the real one never fails, lies or redirects on cue), trusted by the test profiles
 * because its certificate comes from the test CA.
 */
export async function withFakeServer<T>(ca: CertificateAndKey, handle: FakeHandler, use: (origin: string) => Promise<T>): Promise<T> {
  const certificate = issueServerCertificate({ ca, commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const fake: Server = createServer({ cert: certificate.certPem, key: certificate.keyPem }, (request, response) => {
    const parts: Buffer[] = [];
    request.on('data', (part: Buffer) => parts.push(part));
    request.on('end', () => handle(request, Buffer.concat(parts), response));
  });
  fake.listen(0, '127.0.0.1');
  await once(fake, 'listening');
  try {
    return await use(`https://127.0.0.1:${(fake.address() as AddressInfo).port}`);
  } finally {
    fake.closeAllConnections();
    fake.close();
  }
}
