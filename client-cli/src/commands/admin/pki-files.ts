import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface PemPair {
  readonly certPem: string;
  readonly keyPem: string;
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
