import { randomBytes, randomInt } from 'node:crypto';
import { compactUtcSeconds } from './timestamps.ts';

/**
 * MESH message ids look like `20261122231450123456_A1B2C3`: a UTC timestamp to the
 * microsecond, `_`, six upper-case hex digits. Clients parse that shape, so we keep it; the
 * microseconds and the suffix are random (44 bits), so ids cannot be guessed from a clock.
 */
export const MESSAGE_ID_PATTERN = /^\d{20}_[0-9A-F]{6}$/;

export function newMessageId(at: Date = new Date()): string {
  const micros = String(randomInt(1_000_000)).padStart(6, '0');
  return `${compactUtcSeconds(at)}${micros}_${randomBytes(3).toString('hex').toUpperCase()}`;
}

/** Ids are case-insensitive on the wire; undefined when the value cannot be a message id. */
export function normaliseMessageId(value: string): string | undefined {
  const upper = value.toUpperCase();
  return MESSAGE_ID_PATTERN.test(upper) ? upper : undefined;
}
