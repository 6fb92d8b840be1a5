import { crc32 } from 'node:zlib';
import type { RedisClient } from './redis-client.ts';
import type { RedisKeys } from './keys.ts';

/** Who did what: every send, download and acknowledgement, and every admin action. */
export interface AuditEntry {
  readonly action: string;
  /** The mailbox acting, or `admin` (with the operating-system user) for admin commands. */
  readonly actor: string;
  readonly messageId?: string;
  /** What an admin action was done to (a mailbox, a certificate serial, ...). */
  readonly subject?: string;
  readonly detail?: string;
  readonly requestId?: string;
}

export interface RecordedAuditEntry extends AuditEntry {
  /** Unique in the log: the entry's stream id and its shard's number (`1796169747170-0/3`): two shards may give an id each. */
  readonly id: string;
  readonly at: Date;
}

/** Enough to spread the audit writes over a cluster's masters; reading the latest entries reads every shard. */
export const AUDIT_SHARDS = 16;

/**
 * The audit trail: append-only Redis streams. Entries are only ever added, never edited;
 * the oldest go once they are past the audit retention. The stream id orders them and
 * carries the time. Every send, download and acknowledgement is an entry, so one stream would
 * put them all on one cluster node: the log is sharded by message (by what an admin action was
 * done to, or by its actor), which keeps each message's story in one stream, in order.
 */
export class AuditLog {
  readonly #redis: RedisClient;
  readonly #keys: RedisKeys;

  constructor(redis: RedisClient, keys: RedisKeys) {
    this.#redis = redis;
    this.#keys = keys;
  }

  async record(entry: AuditEntry): Promise<void> {
    const fields = Object.entries(entry).filter(([, value]) => value !== undefined && value !== '');
    const shard = crc32(entry.messageId || entry.subject || entry.actor) % AUDIT_SHARDS;
    await this.#redis.xadd(this.#keys.auditLog(shard), '*', ...fields.flat());
  }

  /** Deletes the entries made before `at`; returns how many went. */
  async trimBefore(at: Date): Promise<number> {
    // Exact, not '~': a trim a minute is cheap, and an entry is never kept past its time by chance.
    const removed = await Promise.all(this.#shardKeys().map((key) => this.#redis.xtrim(key, 'MINID', at.getTime())));
    return removed.reduce((sum, count) => sum + count, 0);
  }

  /**
   * The most recent entries, oldest first (by time: entries of different shards made in one
   * millisecond are in no set order). The shards are merged a batch at a time, newest first, so
   * a long tail holds about `count` entries, not one such tail per shard.
   */
  async tail(count: number): Promise<readonly RecordedAuditEntry[]> {
    const batch = Math.min(count, TAIL_BATCH);
    const shards = this.#shardKeys().map((key, number) => ({ key, number, entries: [] as StreamEntry[], next: 0, before: '+', exhausted: false }));
    const refill = async (shard: (typeof shards)[number]): Promise<void> => {
      shard.entries = await this.#redis.xrevrange(shard.key, shard.before, '-', 'COUNT', batch);
      shard.next = 0;
      shard.exhausted = shard.entries.length < batch;
      const last = shard.entries.at(-1);
      if (last) shard.before = `(${last[0]}`;
    };
    await Promise.all(shards.map(refill));
    const newestFirst: { readonly entry: StreamEntry; readonly shard: number }[] = [];
    while (newestFirst.length < count) {
      let newest: (typeof shards)[number] | undefined;
      for (const shard of shards) {
        const head = shard.entries[shard.next];
        if (head && (!newest || isLater(head[0], newest.entries[newest.next]![0]))) newest = shard;
      }
      if (!newest) break;
      newestFirst.push({ entry: newest.entries[newest.next++]!, shard: newest.number });
      if (newest.next === newest.entries.length && !newest.exhausted) await refill(newest);
    }
    return newestFirst.reverse().map(({ entry: [id, flat], shard }) => {
      const fields: Record<string, string> = {};
      for (let i = 0; i < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
      return {
        id: `${id}/${shard}`,
        at: new Date(streamIdTime(id)[0]),
        action: fields.action ?? '',
        actor: fields.actor ?? '',
        ...(fields.messageId ? { messageId: fields.messageId } : {}),
        ...(fields.subject ? { subject: fields.subject } : {}),
        ...(fields.detail ? { detail: fields.detail } : {}),
        ...(fields.requestId ? { requestId: fields.requestId } : {}),
      };
    });
  }

  #shardKeys(): string[] {
    return Array.from({ length: AUDIT_SHARDS }, (_, shard) => this.#keys.auditLog(shard));
  }
}

type StreamEntry = [id: string, fields: string[]];

/** How many entries of each shard a tail reads at a time. */
const TAIL_BATCH = 500;

/** A stream id's milliseconds and sequence number. */
function streamIdTime(id: string): [number, number] {
  const [ms, sequence] = id.split('-');
  return [Number(ms), Number(sequence)];
}

function isLater(id: string, than: string): boolean {
  const [a, b] = [streamIdTime(id), streamIdTime(than)];
  return a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);
}
