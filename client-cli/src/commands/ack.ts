import type { Command } from 'commander';
import type { CliContext } from './context.ts';
import { messageIdArgument } from './message-id-argument.ts';

export function registerAckCommand(program: Command, context: CliContext): void {
  program
    .command('ack')
    .description('acknowledge a downloaded message, removing it from your inbox')
    .argument('<id>', 'message id', messageIdArgument)
    .action(async (id: string, _flags: object, command: Command) => {
      await context.withClient(command, (client) => client.acknowledge(id));
      context.print(`acknowledged ${id.toUpperCase()}`);
    });
}
