import type { Redis } from 'ioredis';
import { infoSection, masters, type RedisClient } from './redis-client.ts';

/** How full (of its maxmemory) a Redis may get before small payloads stop going into it. */
export const INLINE_MEMORY_SHARE = 0.75;
/** How often each process asks. */
const CHECK_EVERY_MS = 2_000;

/**
 * Whether Redis has room for small payloads, as this process last saw it. Those payloads are
 * what fills Redis fastest (up to 64 KiB each against about 1 KiB of record), and Redis full
 * refuses every write: every mailbox's sends, polls and acknowledgements. So once any master is
 * past INLINE_MEMORY_SHARE of its maxmemory, small payloads go to object storage as large ones
 * do, and Redis keeps its room for records, tokens and the schedule. Without a maxmemory (or
 * INFO, for an ACL user without it) nothing is known, and they go to Redis.
 */
export class RedisMemoryWatch {
  readonly #redis: RedisClient;
  readonly #onChange: (full: boolean, usage: MemoryUsage) => void;
  #full = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(redis: RedisClient, onChange: (full: boolean, usage: MemoryUsage) => void) {
    this.#redis = redis;
    this.#onChange = onChange;
  }

  /** Whether a small payload may be kept in Redis now. */
  readonly roomForPayloads = (): boolean => !this.#full;

  /** Asks every master how full it is; an answer that does not come keeps what was known. */
  async check(): Promise<void> {
    const usages = await Promise.all(masters(this.#redis).map(memoryUsage));
    const fullest = usages.reduce<MemoryUsage | undefined>((most, usage) => (usage && (!most || usage.share > most.share) ? usage : most), undefined);
    const full = fullest !== undefined && fullest.share >= INLINE_MEMORY_SHARE;
    if (full !== this.#full && fullest) this.#onChange(full, fullest);
    this.#full = full;
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.check().catch(() => undefined), CHECK_EVERY_MS).unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

export interface MemoryUsage {
  readonly usedBytes: number;
  readonly maxBytes: number;
  /** usedBytes / maxBytes */
  readonly share: number;
}

async function memoryUsage(node: Redis): Promise<MemoryUsage | undefined> {
  const info = await infoSection(node, 'memory');
  const field = (name: string) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info ?? '')?.[1] ?? 0);
  const usedBytes = field('used_memory');
  const maxBytes = field('maxmemory');
  return maxBytes > 0 ? { usedBytes, maxBytes, share: usedBytes / maxBytes } : undefined;
}
