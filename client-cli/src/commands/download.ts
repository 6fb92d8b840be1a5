import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { formatChecksum } from '../transfer/checksum.ts';
import { formatBytes } from '../transfer/chunking.ts';
import { DownloadIncompleteError, type DownloadResult, downloadFile, isFolder } from '../transfer/download.ts';
import type { CliContext } from './context.ts';
import { messageIdArgument } from './message-id-argument.ts';
import { interruption, stopSignal } from './interruption.ts';
import { DEFAULT_TRANSFER_RETRIES, MIN_FREE_HELP, minFreeOption, QUIET_HELP, retriesHelp, retriesOption } from './transfer-options.ts';

interface DownloadFlags {
  readonly output?: string;
  readonly overwrite?: boolean;
  readonly retries?: number;
  readonly minFree?: number;
  readonly quiet?: boolean;
  readonly json?: boolean;
}

export function registerDownloadCommand(program: Command, context: CliContext): void {
  program
    .command('download')
    .description('download a message (every chunk) to a file, checking its size and checksum; prints the file path')
    .argument('<id>', 'message id', messageIdArgument)
    .option('-o, --output <file>', "the file to write it to, not a folder (default: the sender's file name, else <id>.dat, or a report's <id>.json, in the current folder)")
    .option('--overwrite', 'replace a file already there (otherwise the download is refused)')
    .option('--retries <n>', retriesHelp(false), retriesOption)
    .option('--min-free <size>', MIN_FREE_HELP, minFreeOption)
    .option('--quiet', QUIET_HELP)
    .option('--json', 'print {"messageId": ..., "messageType": "DATA" or "REPORT", "path": ..., "chunks": N, "bytes": B, "verifiedChecksum": "sha256:..." or null, "continuedAfterChunk": K}')
    .addHelpText(
      'after',
      [
        '',
        'Chunks are fetched in order (gzipped ones are unzipped) into a temporary file beside the target,',
        'which is moved into place only when complete: its size checked and, when the message carries',
        'a sha256:<hex> or md5:<hex> checksum, its content verified. On a mismatch nothing is saved (exit 1).',
        'A file already at the target (two messages may carry the same file name) is never replaced without',
        '--overwrite: the download is refused (exit 1) before it begins; give -o with another name. The name is looked at again',
        'only as the verified file is moved into place: should one have appeared there meanwhile, a message of',
        'several chunks is kept whole (exit 1), which the same command run again with --overwrite saves without',
        'fetching it again. A folder at the target is refused before anything is fetched: -o naming one is a',
        'usage error (exit 2); one named as the sender\'s file, exit 1.',
        'A download stops before it leaves its disk with less free space than --min-free (a gzipped message may',
        'unzip to a thousand times its size): nothing of it is kept (exit 1).',
        'A chunk whose transfer breaks off is fetched again (--retries). A stop (Ctrl-C, SIGTERM, SIGHUP) ends the',
        'download at once (exit 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP).',
        'A message of several chunks is resumable: when a download is cut short (a stop, a kill, the network',
        'gone past its retries), the whole chunks received stay in a hidden partial file beside the target',
        '(.<name>.<8 hex>.part, with a .meshbox-download-<8 hex>.chunks note), and the same command run',
        'again continues from the chunk after them. Anything else a failed download wrote is removed.',
        '',
        'A non-delivery report has no payload: what it says (the undelivered message\'s id, why) is saved as',
        'JSON, as receive saves it (<ID>.json unless -o), and nothing else.',
        '',
        'On a terminal, stderr shows a progress bar (chunks done, bytes, rate); otherwise only the result',
        'goes out, on stdout.',
      ].join('\n'),
    )
    .action(async (id: string, flags: DownloadFlags, command: Command) => {
      // The command line's own mistake, refused as such before connecting (downloadFile refuses a folder under the sender's name).
      // One ending in a separator names a folder even when there is none (resolve() would drop the separator, and a file take its name).
      if (flags.output !== undefined && (/[\\/]$/.test(flags.output) || (await isFolder(resolve(context.io.cwd, flags.output))))) {
        command.error(`error: -o ${flags.output} is a folder: give the path of the file to write, -o ${join(flags.output, '<name>')}`);
      }
      const into = flags.output === undefined ? undefined : dirname(resolve(context.io.cwd, flags.output));
      if (into !== undefined && !(await isFolder(into))) throw new Error(`${into} is not a folder (download does not create one): nothing was downloaded`);
      const stop = stopSignal(context.io);
      const result = await context
        .withClient(
          command,
          (client) =>
            downloadFile(client, {
              messageId: id,
              output: flags.output,
              cwd: context.io.cwd,
              progress: context.progress(flags),
              overwrite: flags.overwrite === true,
              minFreeBytes: flags.minFree,
            }),
          { retries: flags.retries ?? DEFAULT_TRANSFER_RETRIES, signal: stop },
        )
        .catch((error: unknown) => {
          const kept = error instanceof DownloadIncompleteError ? error.keptNote('the same command run again') : undefined;
          if (stop.aborted) throw interruption(stop, kept ?? 'nothing was saved');
          throw kept === undefined ? error : new Error(`${error instanceof Error ? error.message : String(error)}\n${kept}`, { cause: error });
        });
      context.tell(flags, summary(result));
      if (flags.json) {
        const fields = {
          messageId: result.messageId,
          messageType: result.messageType,
          path: result.path,
          chunks: result.totalChunks,
          bytes: result.bytes,
          verifiedChecksum: result.checksum ? formatChecksum(result.checksum) : null,
          continuedAfterChunk: result.continuedAfter,
        };
        context.print(JSON.stringify(fields));
      } else {
        context.print(result.path);
      }
    });
}

function summary(result: DownloadResult): string {
  if (result.messageType === 'REPORT') return `message ${result.messageId} is a non-delivery report, with no payload: what it says is saved as JSON`;
  const verified = result.checksum ? `, ${result.checksum.algorithm} checksum verified` : '';
  const continued =
    result.continuedAfter === result.totalChunks
      ? ' (all kept by an earlier run, none fetched again)'
      : result.continuedAfter > 0
        ? ` (continuing after the ${result.continuedAfter} kept from an earlier run)`
        : '';
  return `received ${formatBytes(result.bytes)} in ${result.totalChunks} chunk${result.totalChunks === 1 ? '' : 's'}${continued}${verified}`;
}
