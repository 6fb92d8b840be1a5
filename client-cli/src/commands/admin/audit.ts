import type { Command } from 'commander';
import { printableJson, printableLine } from '../../client/untrusted-text.ts';
import { withAdminStores } from './admin-context.ts';
import { countOption } from './count-option.ts';

/** `admin audit`: the latest entries of the audit log (sends, downloads, acknowledgements, admin actions). */
export function registerAuditCommands(admin: Command): void {
  admin
    .command('audit')
    .description('show the latest audit log entries: who sent, downloaded, acknowledged, and admin actions')
    .option('--tail <n>', 'how many entries', countOption(1), 50)
    .option('--json', 'print JSON lines')
    .action(async (options: { tail: number; json?: boolean }) => {
      const entries = await withAdminStores(({ auditLog }) => auditLog.tail(options.tail));
      for (const entry of entries) {
        if (options.json) {
          console.log(printableJson({ ...entry, at: entry.at.toISOString() }));
          continue;
        }
        const about = [entry.messageId, entry.subject, entry.detail].filter(Boolean).join(' ');
        console.log(printableLine(`${entry.at.toISOString()} ${entry.actor} ${entry.action} ${about}`.trimEnd()));
      }
    });
}
