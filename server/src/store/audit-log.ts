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
  readonly id: string;
  readonly at: Date;
}

/**
 * The audit trail: an append-only Redis stream. Entries are only ever added, never edited;
 * the oldest go once they are past the audit retention. The stream id orders them and
 * carries the time.
 */
export class AuditLog {
  readonly #redis: RedisClient;
  readonly #key: string;

  constructor(redis: RedisClient, keys: RedisKeys) {
    this.#redis = redis;
    this.#key = keys.auditLog;
  }

  async record(entry: AuditEntry): Promise<void> {
    const fields = Object.entries(entry).filter(([, value]) => value !== undefined && value !== '');
    await this.#redis.xadd(this.#key, '*', ...fields.flat());
  }

  /** Deletes the entries made before `at`; returns how many went. */
  async trimBefore(at: Date): Promise<number> {
    // Exact, not '~': a trim a minute is cheap, and an entry is never kept past its time by chance.
    return this.#redis.xtrim(this.#key, 'MINID', at.getTime());
  }

  /** The most recent entries, oldest first. */
  async tail(count: number): Promise<readonly RecordedAuditEntry[]> {
    const entries = await this.#redis.xrevrange(this.#key, '+', '-', 'COUNT', count);
    return entries.reverse().map(([id, flat]) => {
      const fields: Record<string, string> = {};
      for (let i = 0; i < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
      return {
        id,
        at: new Date(Number(id.split('-')[0])),
        action: fields.action ?? '',
        actor: fields.actor ?? '',
        ...(fields.messageId ? { messageId: fields.messageId } : {}),
        ...(fields.subject ? { subject: fields.subject } : {}),
        ...(fields.detail ? { detail: fields.detail } : {}),
        ...(fields.requestId ? { requestId: fields.requestId } : {}),
      };
    });
  }
}
