import type { Command } from 'commander';
import { reconcileLifecycles } from '../../../../server/src/domain/reconcile.ts';
import { withAdminPayloads, withAdminStores } from './admin-context.ts';

/**
 * `admin reconcile`: the step after a restore, when Redis and the bucket no longer agree. Not a
 * worker job: it reads every record and lists the whole bucket, which an operator asks for once.
 */
export function registerReconcileCommand(admin: Command): void {
  admin
    .command('reconcile')
    .description('after a restore: a lifecycle check, due now, for every message the schedule has lost; ids with objects in the bucket but no record counted, or deleted')
    .option('--delete-orphans', "give those ids checks too, which delete their objects: only where the bucket is this deployment's alone")
    .option('--json', 'print JSON: {"recordsChecked", "scheduleEntriesAdded", "orphanIds"}')
    .addHelpText(
      'after',
      [
        '',
        "Reads every message record (SCAN on each Redis master) and lists the bucket's messages/ a page at a time.",
        'A record with no lifecycle schedule entry (one lost with a restored Redis Cluster node) gets a check due',
        'now: the workers expire it, report it to its sender and purge it in its time. An id whose objects are in',
        'the bucket with no record and no reservation (a message sent after the backup Redis was restored from) is',
        'counted; with --delete-orphans it gets a check too, which deletes those objects. Never give that flag',
        "where another deployment (another MESHBOX_REDIS_PREFIX) shares the bucket: its objects have no record here.",
        'An entry already scheduled is never moved, and every step of a check is idempotent: running it twice, or',
        'while the service runs, does no harm. Run it after every restore of Redis or of the bucket',
        "(docs/operations.md). It reads the bucket with the server's settings (MESHBOX_S3_ENDPOINT,",
        'MESHBOX_S3_BUCKET, MESHBOX_S3_REGION, the credentials), set with MESHBOX_REDIS_URL.',
      ].join('\n'),
    )
    .action(async (options: { json?: boolean; deleteOrphans?: boolean }) => {
      const counts = await withAdminPayloads((payloads) =>
        withAdminStores(async ({ messages, schedule, audit }) => {
          const deleteOrphans = options.deleteOrphans === true;
          const found = await reconcileLifecycles({ messages, payloads, schedule }, new Date(), { deleteOrphans });
          await audit('reconcile', 'lifecycle schedule', `${found.scheduleEntriesAdded} checks added, ${found.orphanIds} orphan ids ${deleteOrphans ? 'to delete' : 'left'}`);
          return found;
        }),
      );
      if (options.json) {
        console.log(JSON.stringify(counts, null, 2));
        return;
      }
      const orphans = options.deleteOrphans || counts.orphanIds === 0 ? '' : ' (left: --delete-orphans to delete their objects)';
      console.log(`records checked ${counts.recordsChecked}, schedule entries added ${counts.scheduleEntriesAdded}, orphan ids found ${counts.orphanIds}${orphans}`);
    });
}
