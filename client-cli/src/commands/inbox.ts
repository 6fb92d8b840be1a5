import type { Command } from 'commander';
import { SAFE_MESSAGE_ID } from '../client/untrusted-text.ts';
import type { CliContext } from './context.ts';
import { WORKFLOW_FILTER_HELP, workflowFilterOption } from './transfer-options.ts';

export function registerInboxCommand(program: Command, context: CliContext): void {
  program
    .command('inbox')
    .description('list the ids of messages waiting in your inbox, oldest first (all pages)')
    .option('--workflow <filter>', WORKFLOW_FILTER_HELP, workflowFilterOption)
    .option('--json', 'print a JSON array of ids')
    .action(async (flags: { workflow?: string; json?: boolean }, command: Command) => {
      const ids = await context.withClient(command, (client) => client.listInbox(flags.workflow === undefined ? {} : { workflowFilter: flags.workflow }));
      if (flags.json) context.print(JSON.stringify(ids));
      // One id a line: one that is not an id's shape is quoted, so it cannot pass for two.
      else for (const id of ids) context.print(SAFE_MESSAGE_ID.test(id) ? id : JSON.stringify(id));
    });
}
