import type { Command } from 'commander';
import type { TrackingInfo } from '../client/mesh-client.ts';
import type { CliContext } from './context.ts';
import { messageIdArgument } from './message-id-argument.ts';

/** A short, aligned summary of a tracking answer; fields the server left empty are skipped. */
export function trackingSummary(info: TrackingInfo): string {
  const present = (value: unknown): value is string | number => (typeof value === 'string' && value !== '') || typeof value === 'number';
  // An upload still going has no status detail: how far it got instead.
  const status =
    info.status === 'uploading'
      ? `uploading, ${info.stored_chunks?.length ?? 0} of ${info.chunk_count ?? '?'} chunks stored (meshbox send --resume ${info.message_id} <file> sends the rest)`
      : [info.status, present(info.status_code) ? `code ${info.status_code}` : undefined, info.status_description].filter(present).join(', ');
  const file = [
    info.filename,
    present(info.file_size) ? `${info.file_size} bytes` : undefined,
    present(info.chunk_count) ? `${info.chunk_count} chunk${info.chunk_count === 1 ? '' : 's'}` : undefined,
  ]
    .filter(present)
    .join(', ');
  const rows: [string, unknown][] = [
    ['message', info.message_id],
    ['status', status],
    ['from', info.sender],
    ['to', info.recipient],
    ['workflow', info.workflow_id],
    ['local id', info.local_id],
    ['subject', info.subject],
    ['file', file],
    ['type', info.message_type],
    ['uploaded', info.upload_timestamp],
    ['acknowledged', info.acknowledged_timestamp],
    // Only while it waits in the inbox: afterwards the time has passed, or no longer matters.
    ['expires', info.status === 'accepted' ? info.expiry_time : undefined],
  ];
  const shown = rows.filter((row): row is [string, string | number] => present(row[1]));
  const width = Math.max(...shown.map(([label]) => label.length));
  return shown.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n');
}

export function registerTrackCommand(program: Command, context: CliContext): void {
  program
    .command('track')
    .description('show the status of a message you sent (accepted, acknowledged, ...), by its id or your local id')
    .argument('[id]', 'message id', messageIdArgument)
    .option('--local-id <id>', 'the local id you sent it with, instead of its message id (it must be on one message only)')
    .option('--json', "print the server's tracking record as JSON")
    .action(async (id: string | undefined, flags: { localId?: string; json?: boolean }, command: Command) => {
      if ((id === undefined) === (flags.localId === undefined)) command.error('error: give exactly one of a message id and --local-id');
      const info = await context.withClient(command, async (client) => client.track(id ?? (await client.messageIdForLocalId(flags.localId!))));
      context.print(flags.json ? JSON.stringify(info, null, 2) : trackingSummary(info));
    });
}
