import { readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import test from 'ava';
import { readCertificateAuthority } from '../../client-cli/src/commands/admin/pki-files.ts';
import { issueMailboxCertificate, verifyIssuedBy } from '../../shared/src/pki/index.ts';
import { ensureDevelopmentPki, ensureIssuedBy } from '../../scripts/dev-pki.ts';
import { temporaryDirectory } from '../support/temporary-directory.ts';

const FILES = ['ca.crt', 'ca.key', 'crl.pem', 'server.crt', 'server.key', 'shared-key', 'secret-key', 'mailboxes/LAB001.crt', 'mailboxes/LAB001.key'];

async function setUp(dir: string, steps: string[]): Promise<void> {
  const step = (text: string): void => void steps.push(text);
  await ensureDevelopmentPki(dir, step);
  const ca = await readCertificateAuthority(dir);
  await ensureIssuedBy(ca, join(dir, 'mailboxes'), 'LAB001', step, () => issueMailboxCertificate({ ca, mailboxId: 'LAB001', organisation: 'lab' }));
}

const contents = async (dir: string): Promise<string[]> => Promise.all(FILES.map((file) => readFile(join(dir, file), 'utf8')));

test('setup makes the PKI once, and a CA made anew gets its own revocation list and certificates', async (t) => {
  const dir = await temporaryDirectory(t, 'dev-pki');
  const steps: string[] = [];
  await setUp(dir, steps);
  const first = await contents(dir);

  steps.length = 0;
  await setUp(dir, steps);
  t.deepEqual(await contents(dir), first, 'a second run changes nothing');
  t.deepEqual(steps, []);

  // ca.crt deleted (its key left behind): a new CA, and nothing of the old one's kept in use.
  await unlink(join(dir, 'ca.crt'));
  await setUp(dir, steps);
  const [caPem, , crlPem, serverPem, , sharedKey, secretKey, mailboxPem] = await contents(dir);
  t.not(caPem, first[0]);
  for (const [name, pem] of [['server', serverPem], ['mailbox', mailboxPem]] as const) {
    t.true(verifyIssuedBy(pem!, caPem!), `${name} certificate issued by the new CA`);
  }
  t.not(crlPem, first[2], 'revocation list signed anew');
  t.is(new X509Certificate(caPem!).subject, new X509Certificate(first[0]!).subject);
  t.is(sharedKey, first[5], 'the shared key is kept');
  t.is(secretKey, first[6], 'the secret key is kept');
  t.true(steps.some((text) => /server certificate again/.test(text)));
  t.true(steps.some((text) => /LAB001 certificate again/.test(text)));
});

test('a certificate file that is no certificate is issued again', async (t) => {
  const dir = await temporaryDirectory(t, 'dev-pki');
  await setUp(dir, []);
  await writeFile(join(dir, 'server.crt'), '-----BEGIN CERTIFICATE-----\ntruncated');
  const steps: string[] = [];
  await setUp(dir, steps);
  t.true(verifyIssuedBy(await readFile(join(dir, 'server.crt'), 'utf8'), await readFile(join(dir, 'ca.crt'), 'utf8')));
  t.deepEqual(steps, [`issued server certificate again: the one in ${dir} was not issued by its CA`]);
});

test('setup refuses a MESHBOX_PORT the server would refuse, before it makes anything: the demo profiles would name a port no server takes', async (t) => {
  // As on a fresh machine: set, MESHBOX_REDIS_URL is refused first.
  const { MESHBOX_REDIS_URL: _redis, MESHBOX_S3_ENDPOINT: _s3, ...environment } = process.env;
  const run = spawnSync(process.execPath, ['scripts/setup.ts'], { env: { ...environment, MESHBOX_PORT: 'abc' }, encoding: 'utf8' });
  t.is(run.status, 1);
  t.is(run.stdout, '', 'nothing made');
  t.is(run.stderr, 'setup: invalid configuration:\n  MESHBOX_PORT: a number is needed, not "abc"\n');
});
