import type { Command } from 'commander';
import { mapInBatches } from '../../../../shared/src/batches.ts';
import type { LastHandshake } from '../../../../server/src/store/mailboxes.ts';
import type { InboxBacklog } from '../../../../server/src/store/messages.ts';
import { printableJson, printableLine } from '../../client/untrusted-text.ts';
import { withAdminStores } from './admin-context.ts';
import { countOption } from './count-option.ts';

/** Mailboxes whose inboxes are read at once, their commands sharing Redis writes. */
const BATCH = 200;
const HOUR_MS = 3_600_000;

interface Waiting extends InboxBacklog {
  readonly mailboxId: string;
  readonly name: string;
  readonly active: boolean;
  readonly lastHandshake: LastHandshake | undefined;
}

/**
 * `admin backlog`: the mailboxes with messages waiting, the longest-waiting first. A mailbox whose
 * messages wait for days is a system that has stopped collecting (a GP practice's results): worth
 * a call before they expire and go back to their senders as non-delivery reports.
 */
export function registerBacklogCommand(admin: Command): void {
  admin
    .command('backlog')
    .description('mailboxes with messages waiting in their inbox, the longest-waiting first: a system that has stopped collecting')
    .option('--older-than <hours>', 'only mailboxes whose first waiting message has waited longer than this', countOption(0))
    .option('--json', 'print JSON: [{"mailbox", "name", "active", "waiting", "oldestMessageId", "waitingSince" (ISO), "lastHandshakeAt" (ISO or null)}]')
    .addHelpText(
      'after',
      [
        '',
        'A line per mailbox: since when its first message has waited (UTC), for how long, how many wait, the',
        'mailbox id, how long ago its system last made a handshake (a --watch client makes one at start and daily,',
        'so days of silence mean it is down; one run from cron makes none unless it runs `meshbox handshake`),',
        '"disabled" where it is, and its name. Unacknowledged messages expire after',
        'MESHBOX_INBOX_EXPIRY_SECONDS (5 days by default) and go back to their senders as non-delivery reports.',
      ].join('\n'),
    )
    .action(async (options: { olderThan?: number; json?: boolean }) => {
      const now = Date.now();
      const waiting = await withAdminStores(async ({ mailboxes, messages }) => {
        // Ids only: a mailbox's record (name, state, last handshake) is read once it has messages waiting.
        const found = await mapInBatches(await mailboxes.ids(), BATCH, async (id): Promise<Waiting | undefined> => {
          const backlog = await messages.waiting(id);
          const record = backlog.count > 0 ? await mailboxes.listing(id) : undefined;
          return record && { mailboxId: id, name: record.name, active: record.active, lastHandshake: record.lastHandshake, ...backlog };
        });
        return found.filter((entry) => entry !== undefined);
      });
      const since = (entry: Waiting) => entry.oldest?.since?.getTime() ?? now;
      const listed = waiting
        .filter((entry) => options.olderThan === undefined || now - since(entry) > options.olderThan * HOUR_MS)
        .sort((a, b) => since(a) - since(b) || a.mailboxId.localeCompare(b.mailboxId));
      if (options.json) {
        const described = listed.map((entry) => ({
          mailbox: entry.mailboxId,
          name: entry.name,
          active: entry.active,
          waiting: entry.count,
          oldestMessageId: entry.oldest?.messageId ?? null,
          waitingSince: entry.oldest?.since?.toISOString() ?? null,
          lastHandshakeAt: entry.lastHandshake?.at.toISOString() ?? null,
        }));
        // Names are what an admin typed: C1 controls and invisible characters (which JSON leaves as they are) escaped.
        console.log(printableJson(described, 2));
        return;
      }
      for (const entry of listed) {
        const at = entry.oldest?.since;
        const seen = entry.lastHandshake ? `handshake ${age(now - entry.lastHandshake.at.getTime())} ago` : 'no handshake';
        console.log(
          [
            at?.toISOString().slice(0, 16).replace('T', ' ') ?? 'unknown',
            at ? age(now - at.getTime()) : '-',
            `${entry.count} waiting`,
            entry.mailboxId,
            seen,
            ...(entry.active ? [] : ['disabled']),
            printableLine(entry.name),
          ].join('\t'),
        );
      }
    });
}

/** `3d 4h`, `5h 12m`, `7m`: how long, to the minute. */
function age(ms: number): string {
  const minutes = Math.max(0, Math.floor(ms / 60_000));
  const [days, hours] = [Math.floor(minutes / 1440), Math.floor((minutes % 1440) / 60)];
  if (days > 0) return `${days}d ${hours}h`;
  return hours > 0 ? `${hours}h ${minutes % 60}m` : `${minutes}m`;
}
