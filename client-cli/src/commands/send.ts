import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import type { CliContext } from './context.ts';

interface SendFlags {
  readonly to: string;
  readonly workflow: string;
  readonly subject?: string;
  readonly localId?: string;
  readonly fileName?: string;
  readonly json?: boolean;
}

async function fileSize(path: string): Promise<number> {
  const info = await stat(path).catch((error: Error) => {
    throw new Error(`cannot read ${path}: ${error.message}`);
  });
  if (!info.isFile()) throw new Error(`${path} is not a file`);
  return info.size;
}

export function registerSendCommand(program: Command, context: CliContext): void {
  program
    .command('send')
    .description('send a file to a mailbox as one chunk, streamed from disk; prints the message id')
    .argument('<file>', 'the file to send')
    .requiredOption('--to <mailbox>', 'recipient mailbox id')
    .requiredOption('--workflow <id>', 'workflow id, e.g. PATH_TEST_RESULTS')
    .option('--subject <text>', 'subject line')
    .option('--local-id <id>', 'your own reference for the message (tracking shows it)')
    .option('--file-name <name>', "file name the recipient sees (default: the file's own name)")
    .option('--json', 'print {"messageId": ...}')
    .action(async (file: string, flags: SendFlags, command: Command) => {
      const path = resolve(context.io.cwd, file);
      const size = await fileSize(path);
      const messageId = await context.withClient(command, (client) =>
        client.sendMessage({
          to: flags.to,
          workflowId: flags.workflow,
          // A function, not a stream: a refused attempt can then reopen the file and retry.
          body: () => createReadStream(path),
          size,
          subject: flags.subject,
          localId: flags.localId,
          fileName: flags.fileName ?? basename(path),
        }),
      );
      context.print(flags.json ? JSON.stringify({ messageId }) : messageId);
    });
}
