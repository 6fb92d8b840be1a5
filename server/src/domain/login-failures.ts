import type { RateLimitStore } from '../store/rate-limits.ts';

/** Failed logins a certificate may make in a minute before its requests are refused until the minute ends. */
export const MAX_LOGIN_FAILURES_PER_MINUTE = 10;
const MINUTE_MS = 60_000;

/**
 * Guards mailbox passwords against guessing: a token whose HMAC does not match (a wrong
 * password, or a mailbox that does not exist or is disabled) is a failed login, counted per
 * certificate in Redis, across every API process. Past the limit, every request of that
 * certificate is answered 429 until the minute ends, the right password included, so a guesser
 * cannot tell when it has found it.
 * Which certificates are refused is known to each process from the failures it sees itself:
 * a guesser spread over N processes is refused by each after its first failure there past the
 * limit. Nothing is read from Redis for a request that does not fail.
 */
export class LoginFailures {
  readonly #rateLimits: RateLimitStore;
  /** Certificate name -> when its refusal ends (ms): only certificates over the limit, pruned as they end. */
  readonly #refusedUntil = new Map<string, number>();

  constructor(rateLimits: RateLimitStore) {
    this.#rateLimits = rateLimits;
  }

  /** Seconds until the certificate's requests are served again; 0 when they are. */
  refusedFor(certificateName: string, now: Date): number {
    const until = this.#refusedUntil.get(certificateName);
    if (until === undefined) return 0;
    if (until <= now.getTime()) {
      this.#refusedUntil.delete(certificateName);
      return 0;
    }
    return Math.ceil((until - now.getTime()) / 1000);
  }

  async record(certificateName: string, now: Date): Promise<void> {
    const failures = await this.#rateLimits.countLoginFailure(certificateName, now);
    if (failures <= MAX_LOGIN_FAILURES_PER_MINUTE) return;
    for (const [name, until] of this.#refusedUntil) if (until <= now.getTime()) this.#refusedUntil.delete(name);
    this.#refusedUntil.set(certificateName, (Math.floor(now.getTime() / MINUTE_MS) + 1) * MINUTE_MS);
  }
}
