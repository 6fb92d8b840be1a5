import { crc32 } from 'node:zlib';
import type { RedisKeys } from './keys.ts';
import { LuaScript } from './lua-script.ts';
import { type RedisClient, scanPages } from './redis-client.ts';

const claimDueScript = new LuaScript('claim-due');
const rescheduleScript = new LuaScript('reschedule');
const postponeScript = new LuaScript('postpone-check');

/** Enough to spread the schedule over a cluster's masters; each shard is scanned on every sweep. */
export const SCHEDULE_SHARDS = 16;

export interface Claim {
  readonly messageId: string;
  readonly leaseEnd: number;
}

export type ScheduleCounts = {
  /** Messages whose life is not over (each has a next check). */
  readonly scheduled: number;
  /** Of those, the ones whose check is due now. */
  readonly due: number;
  /** Messages whose last check failed and is being retried. */
  readonly failing: number;
  /** Checks a worker has claimed and not finished: a worker that died holds its own until their lease ends. */
  readonly held: number;
};

export interface LifecycleFailure {
  readonly messageId: string;
  readonly attempts: number;
  readonly reason: string;
  readonly failedAt: string;
}

/**
 * When each message's life is next looked at: one sorted-set entry per message (a few dozen
 * bytes), sharded so a cluster spreads them. Workers claim what is due with a lease.
 */
export class LifecycleSchedule {
  readonly #redis: RedisClient;
  readonly #keys: RedisKeys;

  constructor(redis: RedisClient, keys: RedisKeys) {
    this.#redis = redis;
    this.#keys = keys;
  }

  #shardOf(messageId: string): number {
    return crc32(messageId) % SCHEDULE_SHARDS;
  }

  #shardKey(messageId: string): string {
    return this.#keys.lifecycleSchedule(this.#shardOf(messageId));
  }

  /** The schedule shard and its leases, for the scripts that claim. */
  #claimKeys(shard: number): string[] {
    return [this.#keys.lifecycleSchedule(shard), this.#keys.lifecycleLeases(shard)];
  }

  /** The schedule shard, its leases and its failures: what a release touches, in one slot. */
  #releaseKeys(messageId: string): string[] {
    const shard = this.#shardOf(messageId);
    return [...this.#claimKeys(shard), this.#keys.lifecycleFailures(shard)];
  }

  /** The first check of a new message id; an id already scheduled (a clash) keeps its own. True when it had none. */
  async start(messageId: string, at: Date): Promise<boolean> {
    return (await this.#redis.zadd(this.#shardKey(messageId), 'NX', at.getTime(), messageId)) === 1;
  }

  /** Makes sure the next check comes no later than `at` (an earlier one stays). */
  async schedule(messageId: string, at: Date): Promise<void> {
    await this.#redis.zadd(this.#shardKey(messageId), 'LT', at.getTime(), messageId);
  }

  /** Moves the next check from `from` to `to`, unless it has changed since (claimed, or brought forward). */
  async postpone(messageId: string, from: Date, to: Date): Promise<void> {
    await postponeScript.run(this.#redis, [this.#shardKey(messageId)], [messageId, from.getTime(), to.getTime()]);
  }

  /** When the message is next looked at; undefined when its life is over. */
  async nextCheck(messageId: string): Promise<Date | undefined> {
    const score = await this.#redis.zscore(this.#shardKey(messageId), messageId);
    return score === null ? undefined : new Date(Number(score));
  }

  async claimDue(shard: number, now: Date, leaseMs: number, limit: number): Promise<Claim[]> {
    const leaseEnd = now.getTime() + leaseMs;
    const ids = (await claimDueScript.run(this.#redis, this.#claimKeys(shard), [now.getTime(), leaseEnd, limit])) as string[];
    return ids.map((messageId) => ({ messageId, leaseEnd }));
  }

  /** After a claim's steps: the next check (undefined: none, the message's life is over). */
  async release(claim: Claim, next: Date | undefined): Promise<void> {
    await rescheduleScript.run(this.#redis, this.#releaseKeys(claim.messageId), [claim.messageId, claim.leaseEnd, next ? next.getTime() : '', '']);
  }

  /** After a claim's steps failed: retried after a backoff that grows with the attempts; the failure is kept for `admin queues`. */
  async releaseFailed(claim: Claim, reason: string, now: Date, backoffMs: (attempts: number) => number): Promise<LifecycleFailure> {
    const keys = this.#releaseKeys(claim.messageId);
    const previous = await this.#redis.hget(keys[2]!, claim.messageId);
    const attempts = (previous ? (JSON.parse(previous) as LifecycleFailure).attempts : 0) + 1;
    const failure: LifecycleFailure = { messageId: claim.messageId, attempts, reason, failedAt: now.toISOString() };
    await rescheduleScript.run(this.#redis, keys, [claim.messageId, claim.leaseEnd, now.getTime() + backoffMs(attempts), JSON.stringify(failure)]);
    return failure;
  }

  /** Up to `limit` of the failing messages (any order). */
  async failures(limit: number): Promise<LifecycleFailure[]> {
    const failures: LifecycleFailure[] = [];
    for (let shard = 0; shard < SCHEDULE_SHARDS && failures.length < limit; shard++) {
      // A page of a large hash (no longer a listpack) may hold fewer than COUNT, even none: read on to the limit.
      for await (const entries of scanPages((cursor) => this.#redis.hscan(this.#keys.lifecycleFailures(shard), cursor, 'COUNT', Math.max(limit, 10)))) {
        for (let i = 1; i < entries.length && failures.length < limit; i += 2) failures.push(JSON.parse(entries[i]!) as LifecycleFailure);
        if (failures.length >= limit) break;
      }
    }
    return failures;
  }

  async counts(now: Date): Promise<ScheduleCounts> {
    const shardNumbers = Array.from({ length: SCHEDULE_SHARDS }, (_, shard) => shard);
    const shards = shardNumbers.map((shard) => this.#keys.lifecycleSchedule(shard));
    const [scheduled, due, failing, held] = await Promise.all([
      Promise.all(shards.map((key) => this.#redis.zcard(key))),
      Promise.all(shards.map((key) => this.#redis.zcount(key, '-inf', now.getTime()))),
      Promise.all(shardNumbers.map((shard) => this.#redis.hlen(this.#keys.lifecycleFailures(shard)))),
      Promise.all(shardNumbers.map((shard) => this.#redis.hlen(this.#keys.lifecycleLeases(shard)))),
    ]);
    const sum = (values: number[]): number => values.reduce((total, value) => total + value, 0);
    return { scheduled: sum(scheduled), due: sum(due), failing: sum(failing), held: sum(held) };
  }
}
