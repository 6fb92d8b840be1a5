import type { RateLimitStore } from '../store/rate-limits.ts';

/** Failed logins a certificate may make in a minute before its requests are refused until the minute ends. */
export const MAX_LOGIN_FAILURES_PER_MINUTE = 10;
const MINUTE_MS = 60_000;
/** Past this many certificates counted, those of earlier minutes are forgotten. */
const PRUNE_ABOVE = 1_000;

interface MinuteCount {
  readonly minute: number;
  failures: number;
}

/**
 * Guards mailbox passwords against guessing: a token whose HMAC does not match (a wrong
 * password, or a mailbox that does not exist) is a failed login of the certificate that sent
 * it; a right one for a disabled mailbox is refused, and no guess. Past the limit in a minute, every request of that certificate is
 * answered 429 until the minute ends, the right password included, so a guesser cannot tell
 * when it has found it.
 *
 * A failure counts in this process at once, as its token fails against the mailbox as the
 * process knew it (`suspect`), before the mailbox is read again to be sure: guesses sent
 * together are then refused from the one past the limit, and a right password among them after
 * it is refused too (it is checked once more as it passes: `refusedFor`). One that the fresh
 * read admits after all (a password just changed) is taken back (`withdraw`). A failure that
 * stands is counted in Redis too (`confirm`), across every API process: a guesser spread over N
 * processes is refused by each once the count it hears of is past the limit. Nothing is read
 * from Redis for a request that does not fail.
 */
export class LoginFailures {
  readonly #rateLimits: RateLimitStore;
  /** Certificate name -> its failed logins in the current minute, as this process knows them. */
  readonly #counts = new Map<string, MinuteCount>();

  constructor(rateLimits: RateLimitStore) {
    this.#rateLimits = rateLimits;
  }

  /** Seconds until the certificate's requests are served again; 0 when they are. */
  refusedFor(certificateName: string, now: Date): number {
    const count = this.#counts.get(certificateName);
    if (count === undefined || count.minute !== minuteOf(now) || count.failures <= MAX_LOGIN_FAILURES_PER_MINUTE) return 0;
    return Math.ceil(((count.minute + 1) * MINUTE_MS - now.getTime()) / 1000);
  }

  /** A login failed against the mailbox as this process knew it: counted at once. */
  suspect(certificateName: string, now: Date): void {
    this.#countOf(certificateName, now).failures += 1;
  }

  /** A suspected failure that a fresh read of the mailbox admitted after all. */
  withdraw(certificateName: string, now: Date): void {
    const count = this.#counts.get(certificateName);
    if (count?.minute === minuteOf(now)) count.failures = Math.max(0, count.failures - 1);
  }

  /** A suspected failure that stands: counted across processes, and this process told their count. */
  async confirm(certificateName: string, now: Date): Promise<void> {
    const shared = await this.#rateLimits.countLoginFailure(certificateName, minuteOf(now));
    const count = this.#countOf(certificateName, now);
    count.failures = Math.max(count.failures, shared);
  }

  #countOf(certificateName: string, now: Date): MinuteCount {
    const minute = minuteOf(now);
    const known = this.#counts.get(certificateName);
    if (known?.minute === minute) return known;
    if (this.#counts.size >= PRUNE_ABOVE) {
      for (const [name, count] of this.#counts) if (count.minute < minute) this.#counts.delete(name);
    }
    const fresh = { minute, failures: 0 };
    this.#counts.set(certificateName, fresh);
    return fresh;
  }
}

function minuteOf(at: Date): number {
  return Math.floor(at.getTime() / MINUTE_MS);
}
