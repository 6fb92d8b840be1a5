import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadPki } from '../pki.ts';
import { writePemPair, writeRevocationList } from './pki-files.ts';

export function registerCaCommands(admin: Command, pkiDir: () => string): void {
  const ca = admin.command('ca').description('the certificate authority that signs server and mailbox certificates');
  ca.command('init')
    .description('create a new CA (ca.crt, ca.key) in the PKI folder, and its revocation list (crl.pem), empty')
    .option('--name <cn>', 'common name of the CA', 'meshbox development CA')
    .option('--force', 'replace an existing CA (every certificate it signed stops working)')
    .action(async (options: { name: string; force?: boolean }) => {
      const dir = pkiDir();
      const exists = await access(join(dir, 'ca.crt')).then(() => true, () => false);
      if (exists && !options.force) throw new Error(`a CA already exists in ${dir} (use --force to replace it)`);
      const { createCertificateAuthority } = await loadPki();
      const authority = createCertificateAuthority({ commonName: options.name });
      const files = await writePemPair(dir, 'ca', authority);
      // A server given MESHBOX_TLS_CRL will not start without one, and nothing is revoked yet.
      const crl = await writeRevocationList(dir, authority, []);
      console.log(`CA written: ${files.cert}; revocation list (empty): ${crl}`);
    });
}
