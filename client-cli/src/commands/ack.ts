import type { Command } from 'commander';
import { MeshClientError } from '../client/errors.ts';
import { type CliContext, errorLine } from './context.ts';
import { messageIdsArgument } from './message-id-argument.ts';

export function registerAckCommand(program: Command, context: CliContext): void {
  program
    .command('ack')
    .description(
      'acknowledge downloaded messages, removing them from your inbox: each in turn, printing `acknowledged <ID>`; ' +
        'one the server refuses (not in your inbox) is named on stderr and the rest go on, ' +
        'while a server not answering stops the command there',
    )
    .argument('<id...>', 'message ids', messageIdsArgument)
    .action(async (ids: string[], _flags: object, command: Command) => {
      const refused = await context.withClient(command, async (client) => {
        let refusals = 0;
        for (const [index, id] of ids.entries()) {
          try {
            await client.acknowledge(id);
          } catch (error) {
            const notAcknowledged = `message ${id.toUpperCase()} not acknowledged: ${error instanceof Error ? error.message : String(error)}`;
            // Not answered (the server away, the connection broken): the ones after it would wait out their retries alike.
            if (!(error instanceof MeshClientError)) throw new Error(`${notAcknowledged}${notTried(ids.length - index - 1)}`, { cause: error });
            const refusal = new Error(notAcknowledged, { cause: error });
            if (ids.length === 1) throw refusal;
            refusals += 1;
            context.io.stderr(`${errorLine(refusal)}\n`);
            continue;
          }
          context.print(`acknowledged ${id.toUpperCase()}`);
        }
        return refusals;
      });
      if (refused > 0) throw new Error(`${refused} of ${ids.length} messages not acknowledged (see above)`);
    });
}

function notTried(left: number): string {
  return left === 0 ? '' : `; the ${left} after it ${left === 1 ? 'was' : 'were'} not tried`;
}
