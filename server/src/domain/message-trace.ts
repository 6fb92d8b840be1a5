import { messageIdTime } from '../../../shared/src/protocol/index.ts';
import type { AuditLog, MessageAuditEntries } from '../store/audit-log.ts';
import type { LifecycleSchedule } from '../store/lifecycle-schedule.ts';
import type { MessageRecord, MessageStore } from '../store/messages.ts';
import { PROCESS_CLOCKS_APART_MS } from './clocks.ts';

export interface TraceStores {
  readonly messages: Pick<MessageStore, 'get'>;
  readonly schedule: Pick<LifecycleSchedule, 'nextCheck'>;
  readonly auditLog: Pick<AuditLog, 'messageEntries'>;
}

/** What a support desk asking "where is my message?" needs: the record, the next check, the audit story. */
export interface MessageTrace {
  readonly messageId: string;
  /** Undefined when Redis holds none: never sent, or purged (a message retention after it was accepted). */
  readonly record: MessageRecord | undefined;
  /** When a worker next looks at it; undefined when its life is over (or it never had one). */
  readonly nextCheck: Date | undefined;
  /** Where the read of its audit shard began; undefined for the shard's start (an id whose time cannot be read). */
  readonly storyFrom: Date | undefined;
  readonly story: MessageAuditEntries;
}

/**
 * Entries of the audit shard read, at most, for one message's story: at national rates (some
 * 200 entries a second a shard) well over an hour of the log, in about a thousand short reads.
 */
export const DEFAULT_STORY_SCAN = 1_000_000;

/**
 * Gathers what is known of one message, for an operator. Its audit entries are all in one shard,
 * in order, none made before its id (a send is recorded after the id is chosen): the shard is
 * read from the id's time, less PROCESS_CLOCKS_APART_MS, as the id is dated by the clock of the
 * API process that made it and the entries by Redis's. An id whose digits are no real time is
 * read from the shard's start. `scanLimit` bounds the entries read.
 */
export async function traceMessage(stores: TraceStores, messageId: string, scanLimit: number = DEFAULT_STORY_SCAN): Promise<MessageTrace> {
  const madeAt = messageIdTime(messageId);
  const storyFrom = madeAt && new Date(madeAt.getTime() - PROCESS_CLOCKS_APART_MS);
  const [record, nextCheck, story] = await Promise.all([
    stores.messages.get(messageId),
    stores.schedule.nextCheck(messageId),
    stores.auditLog.messageEntries(messageId, storyFrom, scanLimit),
  ]);
  return { messageId, record, nextCheck, storyFrom, story };
}
