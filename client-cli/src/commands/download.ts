import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { MeshClient } from '../client/mesh-client.ts';
import type { CliContext } from './context.ts';

/**
 * The name to save a message under when no -o is given: the sender's mex-FileName reduced to
 * a bare name (it comes from another organisation and must not pick a folder), else `<id>.dat`.
 */
export function defaultFileName(fileName: string | undefined, messageId: string): string {
  // eslint-disable-next-line no-control-regex -- control characters have no place in a file name
  const bare = basename((fileName ?? '').replaceAll('\\', '/')).replace(/[\u0000-\u001f]/g, '');
  return bare === '' || bare === '.' || bare === '..' ? `${messageId.toUpperCase()}.dat` : bare;
}

async function closed(stream: WriteStream): Promise<void> {
  if (stream.closed) return;
  await new Promise<void>((done) => stream.once('close', () => done()));
}

/**
 * Downloads every chunk into a temporary file beside the target, then renames it into place:
 * a reader never sees a half-written file, and a failed download leaves nothing behind.
 */
export async function downloadToFile(client: MeshClient, messageId: string, output: string | undefined, cwd: string): Promise<string> {
  let target: string | undefined;
  let temporary: string | undefined;
  let stream: WriteStream | undefined;
  try {
    await client.downloadMessage(messageId, (metadata) => {
      target = resolve(cwd, output ?? defaultFileName(metadata.fileName, messageId));
      temporary = join(dirname(target), `.${basename(target)}.${randomBytes(4).toString('hex')}.part`);
      // flush: the data is on disk before the rename, so an ack after this never loses it.
      stream = createWriteStream(temporary, { flags: 'wx', flush: true });
      return stream;
    });
    await closed(stream!);
    await rename(temporary!, target!);
    return target!;
  } catch (error) {
    stream?.destroy();
    if (temporary) await rm(temporary, { force: true });
    throw error;
  }
}

export function registerDownloadCommand(program: Command, context: CliContext): void {
  program
    .command('download')
    .description('download a message (every chunk) to a file; prints the file path')
    .argument('<id>', 'message id')
    .option('-o, --output <file>', "where to write it (default: the sender's file name, else <id>.dat, in the current folder)")
    .action(async (id: string, flags: { output?: string }, command: Command) => {
      const path = await context.withClient(command, (client) => downloadToFile(client, id, flags.output, context.io.cwd));
      context.print(path);
    });
}
