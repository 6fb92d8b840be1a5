/**
 * The baseline for request-rate benchmarks: a bare Node https server with meshbox's mutual-TLS
 * settings that answers every request 200 with a tiny JSON body. Usage:
 * `node scripts/bench/bare-mtls-server.ts <port> <server.crt> <server.key> <ca.crt>`
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

const [port, cert, key, ca] = process.argv.slice(2);
if (!port || !cert || !key || !ca) throw new Error('usage: bare-mtls-server.ts <port> <cert> <key> <ca>');
const server = createServer(
  { cert: readFileSync(cert), key: readFileSync(key), ca: readFileSync(ca), requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' },
  (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  },
);
server.keepAliveTimeout = 65_000;
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
