import type { LifecycleSchedule } from '../store/lifecycle-schedule.ts';
import type { MessageStore } from '../store/messages.ts';
import type { PayloadStore } from '../store/payloads.ts';

export interface ReconcileStores {
  readonly messages: Pick<MessageStore, 'recordedIdPages' | 'isRecorded' | 'isReserved'>;
  readonly payloads: Pick<PayloadStore, 'messageIdPages'>;
  readonly schedule: Pick<LifecycleSchedule, 'start'>;
}

export interface ReconcileCounts {
  /** Message records read (one SCAN may give a record twice). */
  readonly recordsChecked: number;
  /** Lifecycle checks added, each due now, for records and ids in the bucket that had none. */
  readonly scheduleEntriesAdded: number;
  /** Ids with objects in the bucket and neither a record nor a reservation: given checks, which delete the objects, when orphans are to be deleted. */
  readonly orphanIds: number;
}

export interface ReconcileOptions {
  /**
   * Whether ids in the bucket with neither a record nor a reservation are given checks, which
   * delete their objects: only where the bucket is this deployment's alone. Another deployment's
   * objects in a bucket it shares (another Redis prefix) are orphans by this one's records.
   */
  readonly deleteOrphans: boolean;
}

/**
 * After a restore (Redis from a backup while the bucket kept what came since; a Redis Cluster
 * node restored on its own, the nodes' backups never of one instant), gives every message the
 * lifecycle schedule has lost track of a check, due now. The check re-reads the message and
 * does what its state asks, every step idempotent: a record expires, is reported or purged in
 * its time; objects of an id with no record and no reservation are deleted (with
 * `deleteOrphans`; counted otherwise). An entry already in
 * the schedule is never moved (a check's lease, a time brought forward, stay).
 *
 * An id in the bucket that is reserved gets a check as well where it has none: once its send
 * records the message, or its reservation lapses (a day), the check takes it from there.
 * Everything is read a page at a time, records and bucket alike, however many there are.
 */
export async function reconcileLifecycles(stores: ReconcileStores, now: Date, options: ReconcileOptions): Promise<ReconcileCounts> {
  const { messages, payloads, schedule } = stores;
  let recordsChecked = 0;
  let scheduleEntriesAdded = 0;
  let orphanIds = 0;
  const addedOf = async (ids: string[]): Promise<number> => (await Promise.all(ids.map((id) => schedule.start(id, now)))).filter(Boolean).length;
  for await (const ids of messages.recordedIdPages()) {
    recordsChecked += ids.length;
    scheduleEntriesAdded += await addedOf(ids);
  }
  for await (const ids of payloads.messageIdPages()) {
    // The reservation first: recording a message ends it, so one recorded meanwhile is seen recorded.
    const found = await Promise.all(ids.map(async (id) => ({ id, reserved: await messages.isReserved(id) })));
    // A recorded one has had its check seen to with the records.
    const unrecorded = (await Promise.all(found.map(async (each) => (each.reserved || !(await messages.isRecorded(each.id)) ? [each] : [])))).flat();
    orphanIds += unrecorded.filter((each) => !each.reserved).length;
    scheduleEntriesAdded += await addedOf(unrecorded.filter((each) => each.reserved || options.deleteOrphans).map((each) => each.id));
  }
  return { recordsChecked, scheduleEntriesAdded, orphanIds };
}
