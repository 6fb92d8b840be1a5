import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { loadPki } from './pki.ts';
import { parseMailboxId } from '../../../shared/src/protocol/index.ts';
import { refuseExistingFiles, writeFileAtomically } from '../transfer/durable-files.ts';
import type { CliContext } from './context.ts';

/**
 * `meshbox cert request`: a new key and a certificate request for a mailbox. The key stays
 * here; only the CSR goes to the admin (`meshbox admin cert sign`).
 */
export function registerCertCommand(program: Command, context: CliContext): void {
  const cert = program.command('cert').description('your own certificate: make a key and a request for the admin to sign');
  cert
    .command('request')
    .description('write <dir>/<MAILBOX>.key (yours alone) and <dir>/<MAILBOX>.csr (for the admin to sign)')
    .requiredOption('--for <mailbox>', 'the mailbox the certificate is for (its CN)')
    .option('--out <dir>', 'folder to write to', '.')
    .option('--organisation <name>', 'organisation name in the request')
    .action(async (options: { for: string; out: string; organisation?: string }) => {
      const mailboxId = parseMailboxId(options.for);
      const { createCertificateRequest } = await loadPki();
      const request = createCertificateRequest({ commonName: mailboxId, organisation: options.organisation });
      await mkdir(options.out, { recursive: true });
      const key = join(options.out, `${mailboxId}.key`);
      const csr = join(options.out, `${mailboxId}.csr`);
      // A key there is most likely the one the mailbox's certificate is in use with.
      await refuseExistingFiles([key, csr], 'write the new key and request to another folder (--out); the current key stays in use until the new certificate is signed');
      await writeFileAtomically(key, request.keyPem, { mode: 0o600, replace: false });
      await writeFileAtomically(csr, request.csrPem, { replace: false });
      context.print(`key ${key} (keep it here), request ${csr} (send it to your meshbox admin)`);
    });
}
