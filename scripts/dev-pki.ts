/**
 * The development PKI `npm run setup` keeps in certs/: a CA, its revocation list, a server
 * certificate for localhost, and the environment's keys. Made where missing; and a certificate
 * the CA did not issue (the CA was made anew after `ca.crt` was deleted) is issued again, as
 * every TLS handshake would refuse it with no word of why.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CRL_FILE, type PemPair, readCertificateAuthority, writePemPair, writeRevocationList } from '../client-cli/src/commands/admin/pki-files.ts';
import { createCertificateAuthority, issueServerCertificate, verifyIssuedBy } from '../shared/src/pki/index.ts';

export type Step = (text: string) => void;

export async function ensureDevelopmentPki(dir: string, step: Step): Promise<void> {
  const newCa = !existsSync(join(dir, 'ca.crt'));
  if (newCa) {
    await writePemPair(dir, 'ca', createCertificateAuthority({ commonName: 'meshbox development CA' }), { replace: true });
    step(`created CA in ${dir}`);
  }
  const ca = await readCertificateAuthority(dir);
  // A new CA's list must be signed by it: the old one's would make the server refuse every client.
  if (newCa || !existsSync(join(dir, CRL_FILE))) {
    // Nothing revoked yet; a server given MESHBOX_TLS_CRL needs the file anyway.
    await writeRevocationList(dir, ca, []);
    step(`wrote an empty revocation list, ${CRL_FILE}`);
  }
  await ensureIssuedBy(ca, dir, 'server', step, () => issueServerCertificate({ ca, commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }));
  await ensureSecretFile(join(dir, 'shared-key'), 24, () => step('generated the environment shared key'));
  await ensureSecretFile(join(dir, 'secret-key'), 32, () => step('generated the server secret key (encrypts mailbox passwords at rest)'));
}

/** `<dir>/<name>.crt` (and its key) issued by `ca`: issued when missing or issued by another CA. */
export async function ensureIssuedBy(ca: PemPair, dir: string, name: string, step: Step, issue: () => PemPair): Promise<void> {
  const certFile = join(dir, `${name}.crt`);
  const existing = existsSync(certFile) ? await readFile(certFile, 'utf8') : undefined;
  if (existing !== undefined && issuedBy(existing, ca)) return;
  await writePemPair(dir, name, issue(), { replace: true });
  step(existing === undefined ? `issued ${name} certificate` : `issued ${name} certificate again: the one in ${dir} was not issued by its CA`);
}

function issuedBy(certPem: string, ca: PemPair): boolean {
  try {
    return verifyIssuedBy(certPem, ca.certPem);
  } catch {
    // Not a certificate at all (a truncated file): issued again like a stranger's.
    return false;
  }
}

async function ensureSecretFile(file: string, bytes: number, made: () => void): Promise<void> {
  if (existsSync(file)) return;
  await writeFile(file, `${randomBytes(bytes).toString('hex')}\n`, { mode: 0o600 });
  made();
}
