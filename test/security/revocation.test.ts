import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { REPO_ROOT } from '../../shared/src/dev-paths.ts';
import { readFile } from 'node:fs/promises';
import { startTestServer } from '../support/harness.ts';
import { mailboxRequest } from '../support/http.ts';
import { startServerProcess } from '../support/server-process.ts';

const run = promisify(execFile);
const CLI = resolve(REPO_ROOT, 'client-cli/src/main.ts');

test('a revoked certificate is refused with 403 at once, on every MESH endpoint, while the mailbox password still works with a new certificate', async (t) => {
  const server = await startTestServer();
  try {
    const alice = await server.createMailbox();
    const inbox = `/messageexchange/${alice.id}/inbox`;
    t.is((await mailboxRequest(server, alice, { path: inbox })).status, 200);
    const [serial] = await server.services.certificates.issuedTo(alice.id);
    t.true(await server.services.certificates.revoke(serial!, new Date()));
    t.false(await server.services.certificates.revoke(serial!, new Date()), 'revoking twice is a no-op');

    const refused = await mailboxRequest(server, alice, { path: inbox });
    t.is(refused.status, 403);
    t.is(refused.json().detail[0].code, '403');
    t.is((await mailboxRequest(server, alice, { path: '/messageexchange/_ping' })).status, 403);
    // Health endpoints answer any certificate of our CA, so they work while Redis is away.
    t.is((await mailboxRequest(server, alice, { path: '/readyz' })).status, 200);
  } finally {
    await server.close();
  }
});

test('admin cert revoke publishes a CRL that the running server loads without a restart: the revoked certificate fails the TLS handshake', async (t) => {
  const server = await startServerProcess({ MESHBOX_CRL_RELOAD_SECONDS: '0.5' }, { withCrl: true });
  try {
    const [alice, bob] = [await server.createMailbox(), await server.createMailbox()];
    t.is((await mailboxRequest(server, alice, { path: `/messageexchange/${alice.id}/inbox` })).status, 200);

    const { stdout } = await run(process.execPath, [CLI, 'admin', 'cert', 'revoke', alice.id], { env: { ...process.env, ...server.adminEnvironment } });
    t.regex(stdout, /revoked: serial [0-9a-f]+/);
    t.regex(stdout, /crl\.pem/);
    t.regex(await readFile(join(server.pkiDir, 'crl.pem'), 'utf8'), /BEGIN X509 CRL/);

    let handshakeRefused = false;
    for (let attempt = 0; attempt < 100 && !handshakeRefused; attempt++) {
      await new Promise((done) => setTimeout(done, 100));
      handshakeRefused = await mailboxRequest(server, alice, { path: '/messageexchange/_ping' }).then(
        () => false,
        () => true,
      );
    }
    t.true(handshakeRefused, 'the TLS handshake refuses the revoked certificate');
    t.is((await mailboxRequest(server, bob, { path: `/messageexchange/${bob.id}/inbox` })).status, 200);
  } finally {
    await server.stop();
  }
});
