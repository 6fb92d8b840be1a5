import type { Command } from 'commander';
import type { CliContext } from './context.ts';

export function registerInboxCommand(program: Command, context: CliContext): void {
  program
    .command('inbox')
    .description('list the ids of messages waiting in your inbox, oldest first (all pages)')
    .option('--json', 'print a JSON array of ids')
    .action(async (flags: { json?: boolean }, command: Command) => {
      const ids = await context.withClient(command, (client) => client.listInbox());
      if (flags.json) context.print(JSON.stringify(ids));
      else for (const id of ids) context.print(id);
    });
}
