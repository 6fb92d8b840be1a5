import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { receiveInbox, type ReceiveOptions, watchInbox } from '../transfer/receive.ts';
import { type CliContext, errorLine } from './context.ts';
import { DEFAULT_TRANSFER_RETRIES, QUIET_HELP, RETRIES_HELP, retriesOption } from './transfer-options.ts';

interface ReceiveFlags {
  readonly watch?: boolean;
  readonly interval: number;
  readonly retries?: number;
  readonly quiet?: boolean;
  readonly json?: boolean;
}

const DEFAULT_INTERVAL_SECONDS = 60;

/** commander parser for --interval: whole seconds, at least one (polling faster only loads the server). */
function intervalOption(value: string): number {
  const seconds = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || seconds < 1 || seconds > 86_400) {
    throw new InvalidArgumentError('Give a whole number of seconds from 1 to 86400, e.g. 60.');
  }
  return seconds;
}

export function registerReceiveCommand(program: Command, context: CliContext): void {
  program
    .command('receive')
    .description('save every message in your inbox into a folder and acknowledge it; --watch keeps doing so')
    .argument('<folder>', 'where the messages go (it must exist)')
    .option('--watch', 'keep polling the inbox until stopped (Ctrl-C or SIGTERM)')
    .option('--interval <seconds>', `seconds between polls with --watch (default ${DEFAULT_INTERVAL_SECONDS}, at least 1)`, intervalOption, DEFAULT_INTERVAL_SECONDS)
    .option('--retries <n>', RETRIES_HELP, retriesOption)
    .option('--quiet', QUIET_HELP)
    .option('--json', 'print a JSON line per message: {"messageId", "messageType", "path", "metadataPath", "bytes"}')
    .addHelpText(
      'after',
      [
        '',
        "Each message becomes <ID>_<sender's file name> (or <ID>.dat) and <ID>.json (sender, workflow,",
        'subject, local id, every mex- header; a non-delivery report has only the .json). Both are written',
        'under hidden temporary names and renamed when complete, the .json last: a program watching the',
        'folder can take a message once its .json appears. A message is acknowledged only after that; one',
        'that fails (a checksum mismatch, a full disk) stays in the inbox and is named on stderr; --watch',
        'tries it again after one interval, then two, four, ... (at most an hour). Prints a line per',
        'message: its id and the file saved (a report: its .json). Without --watch, exits 1 if any failed.',
        'A stop (Ctrl-C, SIGTERM) takes effect at once: a message not yet acknowledged stays in the inbox',
        '(its temporary files removed) and is saved again next time.',
      ].join('\n'),
    )
    .action(async (folder: string, flags: ReceiveFlags, command: Command) => {
      if (!flags.watch && command.getOptionValueSource('interval') === 'cli') throw new Error('--interval needs --watch');
      const target = resolve(context.io.cwd, folder);
      if (!(await stat(target).catch(() => undefined))?.isDirectory()) throw new Error(`${target} is not a folder (receive does not create one)`);
      const options: ReceiveOptions = {
        folder: target,
        progress: context.progress(flags),
        onReceived: (message) =>
          context.print(flags.json ? JSON.stringify(message) : `${message.messageId} ${message.path ?? message.metadataPath}`),
        onFailed: (messageId, error) => context.io.stderr(`${errorLine(error)} (message ${messageId} stays in the inbox)\n`),
        onGone: (messageId) => context.tell(flags, `message ${messageId} was acknowledged or expired meanwhile; skipped`),
      };
      // Only --watch runs until stopped; a single pass ends on Ctrl-C as any command does.
      const signal = flags.watch ? (context.io.stopSignal?.() ?? new AbortController().signal) : undefined;
      const failed = await context.withClient(
        command,
        async (client) => {
          if (!signal) return receiveInbox(client, options);
          context.tell(flags, `watching the inbox every ${flags.interval} s; Ctrl-C stops`);
          await watchInbox(client, {
            ...options,
            intervalMs: flags.interval * 1000,
            signal,
            onListingFailed: (error) => context.io.stderr(`${errorLine(error)} (the inbox is polled again in ${flags.interval} s)\n`),
          });
          return 0;
        },
        { retries: flags.retries ?? DEFAULT_TRANSFER_RETRIES, ...(signal ? { signal } : {}) },
      );
      if (failed > 0) throw new Error(`${failed} message${failed === 1 ? '' : 's'} not received (see above)`);
    });
}
