import type { Command } from 'commander';
import { LIFECYCLE_QUEUE } from '../../../../server/src/jobs/queue-name.ts';
import { printableJson, printableLine } from '../../client/untrusted-text.ts';
import { withAdminStores } from './admin-context.ts';
import { countOption } from './count-option.ts';

/** `admin queues`: how many messages the lifecycle schedule holds, how many are due, and the failing ones with their reasons. */
export function registerQueueCommands(admin: Command): void {
  admin
    .command('queues')
    .description('lifecycle checks scheduled, due, failing and held by workers, and the failing ones with their reasons')
    .option('--failed <n>', 'how many failing checks to show', countOption(0), 20)
    .option('--json', 'print JSON')
    .action(async (options: { failed: number; json?: boolean }) => {
      await withAdminStores(async ({ schedule }) => {
        const counts = await schedule.counts(new Date());
        const failing = await schedule.failures(options.failed);
        if (options.json) {
          console.log(printableJson([{ queue: LIFECYCLE_QUEUE, counts, failing }], 2));
          return;
        }
        console.log(`${LIFECYCLE_QUEUE}: scheduled ${counts.scheduled}, due ${counts.due}, failing ${counts.failing}, held by workers ${counts.held}`);
        for (const failure of failing) {
          // A reason is an error's text, which may quote what a client or backend said: on its line, escaped.
          console.log(`  failing ${printableLine(failure.messageId)} after ${failure.attempts} attempts, last at ${failure.failedAt}: ${printableLine(failure.reason)}`);
        }
      });
    });
}
