import type { Command } from 'commander';
import { dayCount, daysLeft } from '../../../shared/src/pki/validity.ts';
import type { CliContext } from './context.ts';
import { certificateExpiryWarning } from './mailbox-validation.ts';

export function registerHandshakeCommand(program: Command, context: CliContext): void {
  program
    .command('handshake')
    .description('check that the server accepts your certificate and credentials (MESH "validate mailbox"), and say when your certificate expires')
    .action(async (_flags: object, command: Command) => {
      const { mailboxId, notAfter } = await context.withClient(command, async (client) => {
        await client.handshake();
        return { mailboxId: client.mailboxId, notAfter: client.certificateNotAfter };
      });
      if (!notAfter) {
        context.print(`handshake OK: mailbox ${mailboxId}`);
        return;
      }
      const now = new Date();
      const left = daysLeft(notAfter, now);
      context.print(`handshake OK: mailbox ${mailboxId}; its certificate expires on ${notAfter.toISOString().slice(0, 10)} (in ${dayCount(left)})`);
      const warning = certificateExpiryWarning(notAfter, now);
      if (warning) context.io.stderr(`${warning}\n`);
    });
}
