import type { Command } from 'commander';
import { DownloadIncompleteError } from '../transfer/download.ts';
import { NotAcknowledgedError, receiveInbox, type ReceiveOptions, watchInbox } from '../transfer/receive.ts';
import { type CliContext, errorLine } from './context.ts';
import { MIN_FREE_HELP, minFreeOption, WORKFLOW_FILTER_HELP, workflowFilterOption } from './transfer-options.ts';
import { existingFolder, type FolderPassFlags, runFolderPasses, withFolderPassOptions } from './folder-passes.ts';

interface ReceiveFlags extends FolderPassFlags {
  readonly workflow?: string;
  readonly minFree?: number;
}

export function registerReceiveCommand(program: Command, context: CliContext): void {
  withFolderPassOptions(
    program
      .command('receive')
      .description('save every message in your inbox into a folder and acknowledge it; --watch keeps doing so')
      .argument('<folder>', 'where the messages go (it must exist)'),
    'the inbox',
    false,
  )
    .option('--workflow <filter>', WORKFLOW_FILTER_HELP, workflowFilterOption)
    .option('--min-free <size>', MIN_FREE_HELP, minFreeOption)
    .option('--json', 'print a JSON line per message: {"messageId", "messageType", "path", "metadataPath", "bytes"}')
    .addHelpText(
      'after',
      [
        '',
        "Each message becomes <ID>_<sender's file name> (or <ID>.dat) and <ID>.json (sender, workflow,",
        'subject, local id, every mex- header; a non-delivery report has only the .json). Both are written',
        'under hidden temporary names and renamed when complete, the .json last: a program watching the',
        'folder can take a message once its .json appears. A message is acknowledged only after that; one',
        'that fails (a checksum mismatch, a disk it would leave with less than --min-free free) stays in',
        'the inbox and is named on stderr; --watch tries it again after one interval, then two, four, ...',
        '(at most an hour). Prints a line per',
        'message: its id and the file saved (a report: its .json). Without --watch, exits 1 if any failed.',
        'Before fetching a message, receive records the names it will write for it in the hidden folder',
        '.meshbox-receive (the record goes once the message is acknowledged, or after 30 days); a file already',
        'at one of those names is replaced only when an earlier run of that message recorded it as written (its',
        'acknowledgement lost, or its run cut short or failed after). Any other file there, or a name another message',
        'not yet acknowledged recorded, is left as it is, and the message fails as above.',
        'A second receiver on the same folder is refused while one works on it (.meshbox-receive.lock, naming',
        'host and process; one left by a process of this host that is gone is taken over, one of another host is not).',
        'A stop (Ctrl-C, SIGTERM, SIGHUP) takes effect at once: a message not yet acknowledged stays in the inbox',
        'and is saved again next time. --watch then exits 0; a single run exits 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP.',
        'Of a message of several chunks cut short (a stop, a kill, the network gone past its retries), the',
        'whole chunks saved are kept in a hidden partial file (stderr says how many, and of which message):',
        'the next receive into the folder continues after them. Anything else a stop cut short is removed.',
      ].join('\n'),
    )
    .action(async (folder: string, flags: ReceiveFlags, command: Command) => {
      let unacknowledged = 0;
      let stoppedIn: string | undefined;
      const options: ReceiveOptions = {
        ...(await existingFolder(context, command, folder, flags)),
        ...(flags.workflow === undefined ? {} : { workflowFilter: flags.workflow }),
        progress: context.progress(flags),
        minFreeBytes: flags.minFree,
        onReceived: (message) =>
          context.print(flags.json ? JSON.stringify(message) : `${message.messageId} ${message.path ?? message.metadataPath}`),
        onFailed: (messageId, error) => {
          const saved = error instanceof NotAcknowledgedError;
          if (saved) unacknowledged += 1;
          // One saved says so itself (its files are there).
          context.io.stderr(`${errorLine(error)}${saved ? '' : ` (${staysInInbox(messageId, error)})`}\n`);
        },
        // Of a message whose chunks are kept, the stop names it; any other is what `interrupted` says.
        onStopped: (messageId, error) => {
          stoppedIn = error instanceof DownloadIncompleteError ? staysInInbox(messageId, error) : undefined;
        },
        onGone: (messageId) => context.tell(flags, `message ${messageId} was acknowledged or expired meanwhile; skipped`),
      };
      const failed = await runFolderPasses(context, command, flags, {
        polled: 'the inbox',
        interrupted: 'a message not yet acknowledged stays in the inbox and is saved again next time',
        cutShort: () => stoppedIn,
        once: (client, signal) => receiveInbox(client, { ...options, signal }),
        watch: (client, watching) => watchInbox(client, { ...options, ...watching }),
      });
      if (failed > 0) throw new Error(`${unreceived(failed - unacknowledged, unacknowledged)} (see above)`);
    });
}

/** Where a message not received is left: in the inbox, and of one of several chunks, the whole chunks saved in the folder. */
function staysInInbox(messageId: string, error: unknown): string {
  const kept =
    error instanceof DownloadIncompleteError ? `; ${error.keptNote('the next receive into this folder', 'the next receive into this folder, once that file is moved away,')}` : '';
  return `message ${messageId} stays in the inbox${kept}`;
}

/** What a run left in the inbox: messages it could not save, and messages saved whose acknowledgement failed. */
function unreceived(notSaved: number, unacknowledged: number): string {
  const messages = (count: number) => `${count} message${count === 1 ? '' : 's'}`;
  return [
    ...(notSaved > 0 ? [`${messages(notSaved)} not received`] : []),
    ...(unacknowledged > 0 ? [`${messages(unacknowledged)} saved but not acknowledged`] : []),
  ].join(', ');
}
