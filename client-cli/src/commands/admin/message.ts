import type { Command } from 'commander';
import { normaliseMessageId, parseMailboxId } from '../../../../shared/src/protocol/index.ts';
import { DEFAULT_STORY_SCAN, type MessageTrace, traceMessage } from '../../../../server/src/domain/message-trace.ts';
import { InvalidArgumentError } from 'commander';
import type { MessageRecord } from '../../../../server/src/store/messages.ts';
import { printableJson, printableLine } from '../../client/untrusted-text.ts';
import { withAdminStores } from './admin-context.ts';
import { countOption } from './count-option.ts';

/**
 * `admin message <id>`: "where is my message?", answered for any message. A sender can track its
 * own; the service desk sees what Redis holds of any, its next lifecycle check and its audit story.
 */
export function registerMessageCommand(admin: Command): void {
  admin
    .command('message')
    .argument('[message_id]', 'the message id (20200529155357895317_3573F8); or --sender and --local-id')
    .description("trace one message: its record, its next lifecycle check and its audit story (who sent, downloaded, acknowledged it, and when)")
    .option('--sender <mailbox>', "with --local-id: the message its sender gave that local id (instead of its id)", mailboxOption)
    .option('--local-id <id>', 'with --sender: the local id the sender gave the message')
    .option('--scan <n>', 'audit entries of its shard to read at most, its own and other messages\'', countOption(1), DEFAULT_STORY_SCAN)
    .option('--json', 'print JSON: {"messageId", "record" (or null), "nextCheck", "audit": {"from", "entriesRead", "stoppedAt", "entries"}}, dates ISO or null')
    .addHelpText(
      'after',
      [
        '',
        "The record is Redis's while it holds one (a message's is purged MESHBOX_MESSAGE_RETENTION_SECONDS after it",
        'was accepted, 30 days by default): sender, recipient, workflow, status, times, size, file name, subject, local',
        'id. The next lifecycle check is when a worker next looks at it (expiry, report, purge). Its audit entries are',
        "all in one of the log's 16 shards, in order: the shard is read forward from 5 minutes before the time in the",
        "id (for processes' clocks apart), keeping this message's, until its end or --scan entries (each shard holds",
        "other messages' entries too: at national rates some 200 a second, so the default reads over an hour of it).",
        'Where the scan stopped first, the output says at what time: the story may go on; a larger --scan reads on.',
        'Audit entries are kept MESHBOX_AUDIT_RETENTION_SECONDS (30 days by default). An id not of the MESH shape',
        'is refused (exit 1); one found nowhere is said so (exit 0). Each lookup is itself recorded in the audit log',
        '(admin.message <id>, by the operating-system user; by --local-id tracing none, admin.message <sender> with',
        'the local id and how many were found), as what it shows, or asks about, may name a patient.',
        '',
        'With --sender and --local-id, the message is found by the local id its sender gave it (as `meshbox track',
        '--local-id` finds it for the sender), while its record is held: one is traced; of several, their count and up',
        `to ${LISTED_MATCHES} ids are printed (--json: {"sender", "localId", "count", "messageIds"}), to trace by id; none is said so (exit 0).`,
      ].join('\n'),
    )
    .action(async (given: string | undefined, options: { sender?: string; localId?: string; scan: number; json?: boolean }, command: Command) => {
      const byLocalId = options.sender !== undefined || options.localId !== undefined;
      if (byLocalId === (given !== undefined)) command.error('error: give a message id, or --sender and --local-id');
      if (byLocalId && (options.sender === undefined || options.localId === undefined)) command.error('error: --sender and --local-id go together');
      const messageId = given === undefined ? undefined : normaliseMessageId(given);
      if (given !== undefined && !messageId) throw new Error(`not a message id: ${printableLine(given)} (MESH ids look like 20200529155357895317_3573F8)`);
      await withAdminStores(async (stores) => {
        let traced = messageId;
        if (traced === undefined) {
          const { sender = '', localId = '' } = options;
          const { count, ids } = await stores.messages.findByLocalId(sender, localId, LISTED_MATCHES);
          if (count !== 1) {
            // What was asked names a patient as much as what is shown: on record however many were found.
            await stores.audit('message', sender, `local id ${localId}: ${count} found`);
            return void console.log(options.json ? printableJson({ sender, localId, count, messageIds: ids }, 2) : matchesLine(sender, localId, count, ids));
          }
          traced = ids[0]!;
        }
        const trace = await traceMessage(stores, traced, options.scan);
        // What it shows may name a patient (subject, local id): who looked, and when, is on record.
        await stores.audit('message', traced);
        console.log(options.json ? printableJson(traceJson(trace), 2) : traceLines(trace).map(printableLine).join('\n'));
      });
    });
}

/** How many ids of the messages carrying a local id are printed, when several do. */
const LISTED_MATCHES = 20;

function mailboxOption(value: string): string {
  try {
    return parseMailboxId(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

/** What a lookup by local id found, other than the one message it traces. */
function matchesLine(sender: string, localId: string, count: number, ids: readonly string[]): string {
  const named = `local id ${printableLine(localId)}`;
  if (count === 0) return `no message of ${sender} carries ${named} (a message's record, and so its local id, is kept MESHBOX_MESSAGE_RETENTION_SECONDS after it was accepted)`;
  return `${count} messages of ${sender} carry ${named}${count > ids.length ? ` (${ids.length} of them below)` : ''}: trace each by its id\n${ids.map((id) => `  ${id}`).join('\n')}`;
}

function iso(at: Date | undefined): string | null {
  return at?.toISOString() ?? null;
}

function traceJson({ messageId, record, nextCheck, storyFrom, story }: MessageTrace): unknown {
  return {
    messageId,
    record: record
      ? {
          ...record,
          createdAt: iso(record.createdAt),
          statusAt: iso(record.statusAt),
          acceptedAt: iso(record.acceptedAt),
          acknowledgedAt: iso(record.acknowledgedAt),
          payloadPurgedAt: iso(record.payloadPurgedAt),
        }
      : null,
    nextCheck: iso(nextCheck),
    audit: {
      from: iso(storyFrom),
      entriesRead: story.read,
      stoppedAt: iso(story.stoppedAt),
      entries: story.entries.map((entry) => ({ ...entry, at: entry.at.toISOString() })),
    },
  };
}

/** The trace as lines, each to be printed on its own (printableLine: the sender's subject, file name and local id may hold anything). */
function traceLines({ messageId, record, nextCheck, storyFrom, story }: MessageTrace): string[] {
  if (!record && !nextCheck && story.entries.length === 0 && !story.stoppedAt) {
    return [`no record and no audit entries for ${messageId} (audit entries are kept for MESHBOX_AUDIT_RETENTION_SECONDS, 30 days by default)`];
  }
  const lines = [`message ${messageId}`, ...(record ? recordLines(record) : ['  no record: never sent, or purged (a record is kept MESHBOX_MESSAGE_RETENTION_SECONDS after its message was accepted); its audit entries below'])];
  lines.push(`next lifecycle check: ${nextCheck ? nextCheck.toISOString() : 'none (its life is over, or it never began)'}`);
  lines.push(`audit entries (its shard read from ${storyFrom ? storyFrom.toISOString() : 'its start'}: ${story.read} entries, of all messages sharing it):`);
  for (const entry of story.entries) lines.push(`  ${[entry.at.toISOString(), entry.actor, entry.action, entry.detail].filter(Boolean).join(' ')}`);
  if (story.entries.length === 0) lines.push('  none');
  if (story.stoppedAt) {
    lines.push(`scan stopped after ${story.read} entries, at ${story.stoppedAt.toISOString()}, before the end of the log: the story may go on (a larger --scan reads further)`);
  }
  return lines;
}

function recordLines(record: MessageRecord): string[] {
  const { code, event, description } = record.statusDetail;
  const when = (label: string, at: Date | undefined) => (at ? [`  ${label}: ${at.toISOString()}`] : []);
  const given = (label: string, text: string) => (text ? [`  ${label}: ${text}`] : []);
  return [
    `  type: ${record.type}`,
    `  sender: ${record.sender || '(none: a report)'}`,
    `  recipient: ${record.recipient}`,
    `  workflow: ${record.workflowId}`,
    `  status: ${record.status}${code || event || description ? ` (code ${code || '-'}, event ${event || '-'}: ${description || '-'})` : ''}`,
    ...when('created', record.createdAt),
    ...when('accepted', record.acceptedAt),
    ...when('acknowledged', record.acknowledgedAt),
    ...when('status since', record.statusAt),
    ...when('payload purged', record.payloadPurgedAt),
    `  size: ${record.acceptedAt ? `${record.size} bytes` : 'known once accepted'}, in ${record.totalChunks} chunk${record.totalChunks === 1 ? '' : 's'}`,
    `  compressed: ${record.compressed ? 'yes' : 'no'}, encrypted: ${record.encrypted ? 'yes' : 'no'}`,
    ...given('file name', record.fileName),
    ...given('subject', record.subject),
    ...given('local id', record.localId),
    ...given('non-delivery report', record.reportId),
  ];
}
