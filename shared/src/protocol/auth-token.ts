import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { MAILBOX_ID_PATTERN } from './mailbox-id.ts';
import { compactUtcSeconds } from './timestamps.ts';

/**
 * The NHSMESH Authorization token: `NHSMESH {MAILBOX}:{nonce}:{nonce_count}:{timestamp}:{hmac}`,
 * where hmac = hex HMAC-SHA256(sharedKey, `{MAILBOX}:{nonce}:{nonce_count}:{password}:{timestamp}`).
 */
export const AUTH_SCHEME = 'NHSMESH';

export interface AuthToken {
  /** Upper case, as mailbox ids are compared. */
  readonly mailboxId: string;
  /** As the client wrote it, and signed it: the hmac covers these bytes. */
  readonly signedMailboxId: string;
  readonly nonce: string;
  readonly nonceCount: string;
  /** UTC `yyyyMMddHHmm`. */
  readonly timestamp: string;
  readonly hmac: string;
}

const TIMESTAMP_PATTERN = /^\d{12}$/;
const NONCE_COUNT_PATTERN = /^\d{1,20}$/;
const HMAC_PATTERN = /^[0-9a-fA-F]{64}$/;
// Nonces are GUID-like; the bound keeps replay-cache keys small whatever a client sends.
const NONCE_PATTERN = /^[A-Za-z0-9-]{1,64}$/;

export function formatTokenTimestamp(at: Date): string {
  return compactUtcSeconds(at).slice(0, 12);
}

/** Parses a token timestamp as UTC; undefined when it is not a real minute. */
export function parseTokenTimestamp(timestamp: string): Date | undefined {
  if (!TIMESTAMP_PATTERN.test(timestamp)) return undefined;
  const [year, month, day, hour, minute] = [0, 4, 6, 8, 10].map((start, i) =>
    Number(timestamp.slice(start, start + (i === 0 ? 4 : 2))),
  ) as [number, number, number, number, number];
  const at = new Date(Date.UTC(year, month - 1, day, hour, minute));
  // Date.UTC carries what is out of range into the next field (a 13th month, a 25th hour): such a time reads back otherwise.
  const real = at.getUTCFullYear() === year && at.getUTCMonth() === month - 1 && at.getUTCDate() === day && at.getUTCHours() === hour && at.getUTCMinutes() === minute;
  return real ? at : undefined;
}

export function computeTokenHmac(sharedKey: string, token: Omit<AuthToken, 'hmac' | 'mailboxId'>, password: string): string {
  const message = `${token.signedMailboxId}:${token.nonce}:${token.nonceCount}:${password}:${token.timestamp}`;
  return createHmac('sha256', sharedKey).update(message).digest('hex');
}

export interface TokenInput {
  readonly mailboxId: string;
  readonly password: string;
  readonly sharedKey: string;
  readonly nonce?: string;
  readonly nonceCount?: number;
  readonly at?: Date;
}

export function buildAuthorizationHeader(input: TokenInput): string {
  const token = {
    signedMailboxId: input.mailboxId,
    nonce: input.nonce ?? randomUUID(),
    nonceCount: String(input.nonceCount ?? 0),
    timestamp: formatTokenTimestamp(input.at ?? new Date()),
  };
  const hmac = computeTokenHmac(input.sharedKey, token, input.password);
  return `${AUTH_SCHEME} ${token.signedMailboxId}:${token.nonce}:${token.nonceCount}:${token.timestamp}:${hmac}`;
}

/** Parses the header value; legacy clients omit the scheme. Undefined when garbled. */
export function parseAuthorizationHeader(value: string | undefined): AuthToken | undefined {
  if (value === undefined) return undefined;
  let credentials = value.trim();
  if (credentials.slice(0, AUTH_SCHEME.length + 1).toUpperCase() === `${AUTH_SCHEME} `) {
    credentials = credentials.slice(AUTH_SCHEME.length + 1);
  }
  const fields = credentials.split(':');
  if (fields.length !== 5) return undefined;
  const [mailboxId, nonce, nonceCount, timestamp, hmac] = fields as [string, string, string, string, string];
  if (
    !MAILBOX_ID_PATTERN.test(mailboxId) ||
    !NONCE_PATTERN.test(nonce) ||
    !NONCE_COUNT_PATTERN.test(nonceCount) ||
    !TIMESTAMP_PATTERN.test(timestamp) ||
    !HMAC_PATTERN.test(hmac)
  ) {
    return undefined;
  }
  return { mailboxId: mailboxId.toUpperCase(), signedMailboxId: mailboxId, nonce, nonceCount, timestamp, hmac: hmac.toLowerCase() };
}

/** Constant-time check of the token's hmac against the mailbox password. */
export function tokenHmacMatches(sharedKey: string, token: AuthToken, password: string): boolean {
  const expected = Buffer.from(computeTokenHmac(sharedKey, token, password), 'hex');
  const actual = Buffer.from(token.hmac, 'hex');
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
