import { access, rename } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import type { Command } from 'commander';
import { loadPki } from '../pki.ts';
import { describeCertificate } from '../../../../shared/src/pki/inspect.ts';
import { auditIfReachable } from './admin-context.ts';
import { CRL_FILE, writePemPair, writeRevocationList } from './pki-files.ts';

export function registerCaCommands(admin: Command, pkiDir: () => string): void {
  const ca = admin.command('ca').description('the certificate authority that signs server and mailbox certificates');
  ca.command('init')
    .description('create a new CA (ca.crt, ca.key) in the PKI folder, and its revocation list (crl.pem), empty')
    .option('--name <cn>', 'common name of the CA', 'meshbox development CA')
    .option(
      '--force',
      'replace an existing CA, whose files are kept as ca-<time>.crt/.key and crl-<time>.pem (every certificate it signed stops working unless the server trusts both); ' +
        "recorded in the audit log where the deployment's Redis can be reached (MESHBOX_REDIS_URL), else a warning says it was not",
    )
    .action(async (options: { name: string; force?: boolean }) => {
      const dir = pkiDir();
      // A key without its certificate (one half lost, or copied in by hand) counts too: it is kept aside, never overwritten.
      const present = async (name: string) => access(join(dir, name)).then(() => true, () => false);
      const exists = (await present('ca.crt')) || (await present('ca.key'));
      if (exists && !options.force) throw new Error(`a CA already exists in ${dir} (use --force to replace it)`);
      const { createCertificateAuthority } = await loadPki();
      const authority = createCertificateAuthority({ commonName: options.name });
      // The old CA's key signs its revocation list for as long as its certificates are in use.
      const kept = exists ? await keepAside(dir, ['ca.crt', 'ca.key', CRL_FILE]) : [];
      const files = await writePemPair(dir, 'ca', authority);
      // A server given MESHBOX_TLS_CRL will not start without one, and nothing is revoked yet.
      const crl = await writeRevocationList(dir, authority, []);
      const keptNote = kept.length > 0 ? `; the previous CA kept as ${kept.join(', ')}` : '';
      console.log(`CA written: ${files.cert}; revocation list (empty): ${crl}${keptNote}`);
      // Every certificate the old CA signed stops working: who did that, and when, must be on record.
      if (exists) await auditIfReachable('ca.replace', options.name, `serial ${describeCertificate(authority.certPem).serialNumber} in ${dir}${keptNote}`);
    });
}

/** Renames the files of a CA being replaced to `<name>-<time><extension>`; returns the new names. */
async function keepAside(dir: string, names: readonly string[]): Promise<string[]> {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const kept: string[] = [];
  for (const name of names) {
    const extension = extname(name);
    const aside = join(dir, `${basename(name, extension)}-${stamp}${extension}`);
    try {
      await rename(join(dir, name), aside);
      kept.push(aside);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return kept;
}
