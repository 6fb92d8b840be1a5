import { randomFillSync } from 'node:crypto';
import { compactUtcSeconds, readMeshTime } from './timestamps.ts';

/**
 * MESH message ids look like `20261122231450123456_A1B2C3`: a UTC timestamp to the
 * microsecond, `_`, six upper-case hex digits. Clients parse that shape, so we keep it; the
 * microseconds and the suffix are random (44 bits), so ids cannot be guessed from a clock.
 */
export const MESSAGE_ID_PATTERN = /^\d{20}_[0-9A-F]{6}$/;

export function newMessageId(at: Date = new Date()): string {
  const random = randomBytesFromPool(7);
  // 2^32 is no multiple of a million: a bias of one part in 4,000, harmless to uniqueness.
  const micros = String(random.readUInt32BE(0) % 1_000_000).padStart(6, '0');
  return `${compactUtcSeconds(at)}${micros}_${random.subarray(4).toString('hex').toUpperCase()}`;
}

/** Random bytes taken from a buffer refilled 8 KiB at a time: one CSPRNG call per thousand ids, not one per id. */
const pool = Buffer.alloc(8192);
let poolOffset = pool.length;

function randomBytesFromPool(count: number): Buffer {
  if (poolOffset + count > pool.length) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  poolOffset += count;
  return pool.subarray(poolOffset - count, poolOffset);
}

/** A message id in either letter case, ASCII only: Unicode upper-casing makes `ﬀ` (one letter) FF. */
const ANY_CASE_MESSAGE_ID = /^\d{20}_[0-9A-Fa-f]{6}$/;

/** Ids are case-insensitive on the wire; undefined when the value cannot be a message id. */
export function normaliseMessageId(value: string): string | undefined {
  return ANY_CASE_MESSAGE_ID.test(value) ? value.toUpperCase() : undefined;
}

/**
 * The second a message id was made in, by the clock of the process that made it: its first 14
 * digits. Not to the microsecond: meshbox's microseconds are random. Undefined where those digits
 * are no real time (a 13th month): such an id has the shape, but none of ours.
 */
export function messageIdTime(messageId: string): Date | undefined {
  return readMeshTime(messageId.slice(0, 14));
}
