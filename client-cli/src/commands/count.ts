import type { Command } from 'commander';
import type { CliContext } from './context.ts';

export function registerCountCommand(program: Command, context: CliContext): void {
  program
    .command('count')
    .description('print how many messages are waiting in your inbox')
    .action(async (_flags: object, command: Command) => {
      context.print(String(await context.withClient(command, (client) => client.count())));
    });
}
