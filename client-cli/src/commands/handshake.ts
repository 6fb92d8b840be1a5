import type { Command } from 'commander';
import type { CliContext } from './context.ts';

export function registerHandshakeCommand(program: Command, context: CliContext): void {
  program
    .command('handshake')
    .description('check that the server accepts your certificate and credentials (MESH "validate mailbox")')
    .action(async (_flags: object, command: Command) => {
      const mailboxId = await context.withClient(command, async (client) => {
        await client.handshake();
        return client.mailboxId;
      });
      context.print(`handshake OK: mailbox ${mailboxId}`);
    });
}
