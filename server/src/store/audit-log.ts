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

/** How much of the audit log one trim deletes: at most `perStep` entries a command, and `perRun` (give or take a step) a shard. */
export interface TrimBounds {
  readonly perStep: number;
  readonly perRun: number;
}

/**
 * Redis's own limit for a `~` trim with the default node size (100 nodes), a fraction of a
 * millisecond of its time. It must be at least `stream-node-max-entries`: a trim never splits a
 * node, so a node larger than the limit would never go. A run of 100 steps a shard works off up
 * to 16 million entries a minute, far more than any load adds, in about a third of a second of
 * Redis's time all told, spread over 1,600 commands.
 */
export const DEFAULT_TRIM_BOUNDS: TrimBounds = { perStep: 10_000, perRun: 1_000_000 };

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
    await this.#redis.xadd(this.#keys.auditLog(auditShardOf(entry.messageId || entry.subject || entry.actor)), '*', ...fields.flat());
  }

  /**
   * Deletes entries made before `at`, a bounded step at a time: one XTRIM deletes every entry
   * older than its mark at once, and Redis serves no other client meanwhile (every request of
   * every process waits). After a worker outage or a shorter retention, one exact trim of a
   * backlog of hundreds of millions (a day at 1,000 messages a second) would hold them all for
   * seconds (500,000 entries took it 6 ms on a 2-core test machine). Each step is `MINID ~ ... LIMIT`:
   * Redis drops whole nodes of the stream (up to `stream-node-max-entries` entries, 100 by
   * default), never more than the limit's worth, and stops at the node holding the mark. Up to
   * a node's worth of entries older than `at` may so stay a while, until the entries after them
   * are due too: an audit entry kept a little past its retention is harmless, and none goes
   * early. A shard takes steps until one deletes nothing or it has deleted `perRun`: a larger
   * backlog goes over the next runs. Returns how many went, and whether a shard stopped at
   * `perRun` (with more, most likely, left for the next run).
   */
  async trimBefore(at: Date, bounds: TrimBounds = DEFAULT_TRIM_BOUNDS): Promise<{ readonly removed: number; readonly backlog: boolean }> {
    const trimShard = async (key: string): Promise<number> => {
      let removed = 0;
      while (removed < bounds.perRun) {
        const step = await this.#redis.xtrim(key, 'MINID', '~', at.getTime(), 'LIMIT', bounds.perStep);
        if (step === 0) break;
        removed += step;
      }
      return removed;
    };
    const removed = await Promise.all(this.#shardKeys().map(trimShard));
    return { removed: removed.reduce((sum, count) => sum + count, 0), backlog: removed.some((count) => count >= bounds.perRun) };
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
    return newestFirst.reverse().map(({ entry, shard }) => recordedEntry(entry, shard));
  }

  /**
   * One message's entries, in order: its shard read forward from `from` (from the shard's start
   * when undefined) a page at a time, keeping the entries about this message. The shard holds
   * every other message that hashes to it too (about 200 entries a second at national rates),
   * so at most `limit` entries are read: `stoppedAt`, the time of the last one read, says where
   * the log goes on unread, undefined when it was read to its end.
   */
  async messageEntries(messageId: string, from: Date | undefined, limit: number): Promise<MessageAuditEntries> {
    const shard = auditShardOf(messageId);
    const key = this.#keys.auditLog(shard);
    const entries: RecordedAuditEntry[] = [];
    let read = 0;
    let start = from === undefined ? '-' : String(from.getTime());
    let last: StreamEntry | undefined;
    while (read < limit) {
      const count = Math.min(limit - read, STORY_PAGE);
      const page: StreamEntry[] = await this.#redis.xrange(key, start, '+', 'COUNT', count);
      read += page.length;
      for (const entry of page) if (fieldOf(entry, 'messageId') === messageId) entries.push(recordedEntry(entry, shard));
      if (page.length < count) return { entries, read, stoppedAt: undefined };
      last = page.at(-1)!;
      start = `(${last[0]}`;
    }
    // Read to the limit: whether the log goes on past it, one more entry tells.
    if (!last || (await this.#redis.xrange(key, start, '+', 'COUNT', 1)).length === 0) return { entries, read, stoppedAt: undefined };
    return { entries, read, stoppedAt: new Date(streamIdTime(last[0])[0]) };
  }

  #shardKeys(): string[] {
    return Array.from({ length: AUDIT_SHARDS }, (_, shard) => this.#keys.auditLog(shard));
  }
}

/** What `messageEntries` found, and how much of the shard it read to find it. */
export interface MessageAuditEntries {
  readonly entries: readonly RecordedAuditEntry[];
  /** Entries of the shard read, this message's and others'. */
  readonly read: number;
  /** When the limit stopped the read before the end of the log: the time of the last entry read. */
  readonly stoppedAt: Date | undefined;
}

/** The shard of what an entry is about: a message's entries, all in one. */
function auditShardOf(about: string): number {
  return crc32(about) % AUDIT_SHARDS;
}

type StreamEntry = [id: string, fields: string[]];

/** One field of a stream entry, read where it stands, without making an object of every entry passed over. */
function fieldOf([, flat]: StreamEntry, name: string): string | undefined {
  for (let i = 0; i < flat.length; i += 2) if (flat[i] === name) return flat[i + 1];
  return undefined;
}

function recordedEntry([id, flat]: StreamEntry, shard: number): RecordedAuditEntry {
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
}

/** How many entries a read of one message's shard asks for at a time: a short command for Redis, few round trips. */
const STORY_PAGE = 1000;

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
