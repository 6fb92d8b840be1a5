import type { Command } from 'commander';
import { readMeshTime } from '../../../shared/src/protocol/index.ts';
import type { MeshClient, TrackingInfo } from '../client/mesh-client.ts';
import { isGone, MeshClientError } from '../client/errors.ts';
import { printableLine } from '../client/untrusted-text.ts';
import { gzipOfMessage } from '../transfer/upload.ts';
import type { CliContext } from './context.ts';
import { messageIdArgument } from './message-id-argument.ts';
import { nonEmptyOption } from './transfer-options.ts';

/** A short, aligned summary of a tracking answer; fields the server left empty are skipped. */
export function trackingSummary(info: TrackingInfo): string {
  const present = (value: unknown): value is string | number => (typeof value === 'string' && value !== '') || typeof value === 'number';
  // v2's lower case, or v1's title case.
  const status = info.status.toLowerCase();
  const uploading = status === 'uploading';
  // An upload still going has no status detail: how far it got instead (meshbox says; MESH does
  // not, and is not to be read as holding none), and how to finish it.
  const stored =
    info.stored_chunks === undefined
      ? `the server does not say how many of its ${info.chunk_count === undefined ? '' : `${info.chunk_count} `}chunks it holds`
      : `${info.stored_chunks.length} of ${info.chunk_count ?? '?'} chunks stored`;
  const summary = uploading
    ? `uploading, ${stored} (${resumeHint(info)} sends the rest)`
    : [info.status, present(info.status_code) ? `code ${info.status_code}` : undefined, info.status_description].filter(present).join(', ');
  const file = [
    info.filename,
    // Known once the upload is complete.
    present(info.file_size) && !uploading ? `${info.file_size} bytes` : undefined,
    present(info.chunk_count) ? `${info.chunk_count} chunk${info.chunk_count === 1 ? '' : 's'}` : undefined,
  ]
    .filter(present)
    .join(', ');
  const rows: [string, unknown][] = [
    ['message', info.message_id],
    ['status', summary],
    ['from', info.sender],
    ['to', info.recipient],
    ['workflow', info.workflow_id],
    ['local id', info.local_id],
    ['subject', info.subject],
    ['file', file],
    ['type', info.message_type],
    ['uploaded', shownTime(info.upload_timestamp)],
    // MESH has no acknowledged_timestamp: its status_timestamp is when the status became acknowledged.
    ['acknowledged', shownTime(info.acknowledged_timestamp ?? (status === 'acknowledged' ? info.status_timestamp : undefined))],
    // Only while it waits in the inbox: afterwards the time has passed, or no longer matters.
    ['expires', status === 'accepted' ? shownTime(info.expiry_time) : undefined],
  ];
  const shown = rows.filter((row): row is [string, string | number] => present(row[1]));
  const width = Math.max(...shown.map(([label]) => label.length));
  // A row per field: a value holding a line break (the server's text) must not make what looks like another row.
  return shown.map(([label, value]) => `${label.padEnd(width)}  ${printableLine(String(value))}`).join('\n');
}

/**
 * A time from the server as this CLI shows times, ISO 8601 in UTC (`2020-06-01T12:21:52.000Z`),
 * whether it came as meshbox's or as MESH's, which name no zone (readMeshTime reads them as the
 * UTC they are); one that cannot be read as a time, as it came.
 */
function shownTime(value: string | null | undefined): string | null | undefined {
  return typeof value === 'string' ? (readMeshTime(value)?.toISOString() ?? value) : value;
}

/**
 * The send --resume command for an upload in progress, with the chunk size and --gzip the first
 * run used, as far as tracking tells them: a stored chunk other than the last holds, unzipped, as
 * many bytes of the file as each chunk.
 */
function resumeHint(info: TrackingInfo): string {
  const command = `meshbox send --resume ${info.message_id} <file>`;
  const gzip = gzipOfMessage(info);
  if (gzip === true) return `${command} --gzip, with the first run's --chunk-size,`;
  // Unsaid (another server): the sizes as stored may be compressed ones.
  if (gzip === undefined) return `${command}, with the first run's --chunk-size and --gzip,`;
  const numbers = info.stored_chunks ?? [];
  const index = numbers.findIndex((number) => number !== info.chunk_count);
  const chunkSize = index === -1 ? undefined : info.stored_chunk_bytes?.[index];
  return chunkSize === undefined ? `${command}, with the first run's --chunk-size,` : `${command} --chunk-size ${chunkSize}`;
}

export function registerTrackCommand(program: Command, context: CliContext): void {
  program
    .command('track')
    .description('show the status of a message you sent (accepted, acknowledged, ...), by its id or your local id')
    .argument('[id]', 'message id', messageIdArgument)
    .option('--local-id <id>', 'the local id you sent it with, instead of its message id (it must be on one message only)', nonEmptyOption('the local id the message was sent with'))
    .option('--json', "print the server's tracking record as JSON, as it came (the summary shows its times in UTC, ISO 8601)")
    .action(async (id: string | undefined, flags: { localId?: string; json?: boolean }, command: Command) => {
      if ((id === undefined) === (flags.localId === undefined)) command.error('error: give exactly one of a message id and --local-id');
      const info = await context.withClient(command, async (client) => {
        if (id === undefined) return client.track(await messageIdForLocalId(client, flags.localId!));
        return client.track(id).catch((error: unknown) => {
          // Tracking is the sender's: a recipient asking of a message it received is told 404 too.
          if (!isGone(error)) throw error;
          throw new Error(`no message this mailbox sent has id ${id.toUpperCase()} (only its sender can track a message, until its record is purged): ${error.message}`, { cause: error });
        });
      });
      context.print(flags.json ? JSON.stringify(info, null, 2) : trackingSummary(info));
    });
}

/**
 * The one message carrying a local id. None carrying it is a 404 and several a 300, which MESH
 * words only as "Not Found" and "Multiple Choices" (meshbox names the messages): said as what
 * they mean here, and what to do, with the server's words.
 */
async function messageIdForLocalId(client: MeshClient, localId: string): Promise<string> {
  try {
    return await client.messageIdForLocalId(localId);
  } catch (error) {
    if (!(error instanceof MeshClientError)) throw error;
    if (error.status === 404) throw new Error(`no message this mailbox sent carries local id ${localId} (${error.message})`, { cause: error });
    if (error.status !== 300) throw error;
    throw new Error(`local id ${localId} is on several messages this mailbox sent: track each by its message id (${error.message})`, { cause: error });
  }
}
