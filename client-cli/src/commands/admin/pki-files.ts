import { constants } from 'node:fs';
import { access, chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RevokedCertificate } from '../../../../shared/src/pki/index.ts';
import { loadPki } from '../pki.ts';
import { writeFileAtomically } from '../../transfer/durable-files.ts';

/** The revocation list beside the CA that signs it: what MESHBOX_TLS_CRL names. */
export const CRL_FILE = 'crl.pem';

export interface PemPair {
  readonly certPem: string;
  readonly keyPem: string;
}

/** Makes the folder a certificate is to be written to, before anything is registered that would then lack it. */
export async function prepareOutputFolder(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (error) {
    throw new Error(`cannot write certificates to ${dir}: ${(error as Error).message}`, { cause: error });
  }
}

/** Writes `<name>.crt` and `<name>.key` (the key readable by its owner only). */
export async function writePemPair(dir: string, name: string, pair: PemPair): Promise<{ cert: string; key: string }> {
  await mkdir(dir, { recursive: true });
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await writeFile(cert, pair.certPem);
  await writeFile(key, pair.keyPem, { mode: 0o600 });
  await chmod(key, 0o600);
  return { cert, key };
}

/**
 * Signs a fresh CRL (nextUpdate 30 days on) listing `revoked`, and puts it in place whole: a
 * server re-reading the file must never see it half-written.
 */
export async function writeRevocationList(pkiDir: string, ca: PemPair, revoked: readonly RevokedCertificate[]): Promise<string> {
  const file = join(pkiDir, CRL_FILE);
  const { createRevocationList } = await loadPki();
  await writeFileAtomically(file, createRevocationList({ ca, revoked }));
  return file;
}

/**
 * Rewrites `<pki-dir>/crl.pem` from every revocation recorded; the server reloads it by itself.
 * Two revocations at once could each write a list read before the other's serial was recorded,
 * the later write dropping it: so a list is written again until the revocations read after
 * writing it are those it holds.
 */
export async function publishRevocationList(pkiDir: string, recorded: () => Promise<readonly RevokedCertificate[]>): Promise<string> {
  const ca = await readCertificateAuthority(pkiDir);
  const serials = (revocations: readonly RevokedCertificate[]): string => revocations.map((entry) => entry.serialNumber).join(' ');
  for (;;) {
    const revocations = await recorded();
    const file = await writeRevocationList(pkiDir, ca, revocations);
    if (serials(await recorded()) === serials(revocations)) return file;
  }
}

/** The CA that `admin ca init` made in this PKI folder. */
export async function readCertificateAuthority(pkiDir: string): Promise<PemPair> {
  try {
    return {
      certPem: await readFile(join(pkiDir, 'ca.crt'), 'utf8'),
      keyPem: await readFile(join(pkiDir, 'ca.key'), 'utf8'),
    };
  } catch {
    throw new Error(`no CA in ${pkiDir} (run \`meshbox admin ca init\` first, or pass --pki-dir)`);
  }
}
