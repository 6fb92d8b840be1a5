import type { Command } from 'commander';
import { printableLine } from '../client/untrusted-text.ts';
import type { CliContext } from './context.ts';
import { nonEmptyOption } from './transfer-options.ts';

/**
 * commander parser for --ods: trimmed and upper-cased, as ODS codes are written (`a81001` is
 * A81001), since a server may compare them as given (MESH's sandbox does; meshbox does not).
 */
function odsCode(value: string): string {
  return nonEmptyOption('an ODS code, e.g. A81001')(value).trim().toUpperCase();
}

export function registerLookupCommand(program: Command, context: CliContext): void {
  program
    .command('lookup')
    .description("find the mailboxes to send a workflow to: an organisation's (--ods), or every one registered to receive it")
    .argument('<workflow>', 'the workflow id, e.g. PATH_TEST_RESULTS', nonEmptyOption('a workflow id, e.g. PATH_TEST_RESULTS'))
    .option('--ods <code>', "only the organisation with this ODS code (MESH's endpoint lookup; asked upper-cased, as ODS codes are)", odsCode)
    .option('--json', 'print a JSON array of {mailboxId, mailboxName}')
    .action(async (workflow: string, flags: { ods?: string; json?: boolean }, command: Command) => {
      const found = await context.withClient(command, (client) => client.findRecipients(workflow, flags.ods));
      if (flags.json) context.print(JSON.stringify(found));
      else if (found.length === 0) context.io.stderr(`no mailbox${flags.ods === undefined ? '' : ` of ${flags.ods}`} is registered to receive ${workflow}\n`);
      // A line per mailbox: a name holding a line break or tab must not make what looks like another.
      else for (const mailbox of found) context.print(`${printableLine(mailbox.mailboxId)}\t${printableLine(mailbox.mailboxName)}`);
    });
}
