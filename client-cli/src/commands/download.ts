import type { Command } from 'commander';
import { formatChecksum } from '../transfer/checksum.ts';
import { formatBytes } from '../transfer/chunking.ts';
import { downloadFile } from '../transfer/download.ts';
import type { CliContext } from './context.ts';
import { stopSignal, stoppable } from './interruption.ts';
import { DEFAULT_TRANSFER_RETRIES, QUIET_HELP, RETRIES_HELP, retriesOption } from './transfer-options.ts';

interface DownloadFlags {
  readonly output?: string;
  readonly overwrite?: boolean;
  readonly retries?: number;
  readonly quiet?: boolean;
  readonly json?: boolean;
}

export function registerDownloadCommand(program: Command, context: CliContext): void {
  program
    .command('download')
    .description('download a message (every chunk) to a file, checking its size and checksum; prints the file path')
    .argument('<id>', 'message id')
    .option('-o, --output <file>', "where to write it (default: the sender's file name, else <id>.dat, in the current folder)")
    .option('--overwrite', 'replace a file already there (otherwise the download is refused)')
    .option('--retries <n>', RETRIES_HELP, retriesOption)
    .option('--quiet', QUIET_HELP)
    .option('--json', 'print {"messageId": ..., "path": ..., "chunks": N, "bytes": B, "verifiedChecksum": "sha256:..." or null}')
    .addHelpText(
      'after',
      [
        '',
        'Chunks are fetched in order (gzipped ones are unzipped) into a temporary file beside the target,',
        'which is moved into place only when complete: its size checked and, when the message carries',
        'a sha256:<hex> or md5:<hex> checksum, its content verified. On a mismatch nothing is saved (exit 1).',
        'A file already at the target (two messages may carry the same file name) is never replaced without',
        '--overwrite: the download is refused (exit 1); give -o with another name.',
        'A chunk whose transfer breaks off is fetched again (--retries). A stop (Ctrl-C, SIGTERM) ends the',
        'download at once, removing the temporary file (exit 130 for Ctrl-C, 143 for SIGTERM).',
        '',
        'On a terminal, stderr shows a progress bar (chunks done, bytes, rate); otherwise only the result',
        'goes out, on stdout.',
      ].join('\n'),
    )
    .action(async (id: string, flags: DownloadFlags, command: Command) => {
      const stop = stopSignal(context.io);
      const result = await stoppable(stop, 'nothing was saved', () =>
        context.withClient(
          command,
          (client) =>
            downloadFile(client, {
              messageId: id,
              output: flags.output,
              cwd: context.io.cwd,
              progress: context.progress(flags),
              overwrite: flags.overwrite === true,
            }),
          { retries: flags.retries ?? DEFAULT_TRANSFER_RETRIES, signal: stop },
        ),
      );
      const checksum = result.checksum ? formatChecksum(result.checksum) : null;
      const verified = result.checksum ? `, ${result.checksum.algorithm} checksum verified` : '';
      context.tell(flags, `received ${formatBytes(result.bytes)} in ${result.totalChunks} chunk${result.totalChunks === 1 ? '' : 's'}${verified}`);
      if (flags.json) {
        const fields = { messageId: result.messageId, path: result.path, chunks: result.totalChunks, bytes: result.bytes, verifiedChecksum: checksum };
        context.print(JSON.stringify(fields));
      } else {
        context.print(result.path);
      }
    });
}
