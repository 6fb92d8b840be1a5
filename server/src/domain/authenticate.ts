import { type AuthToken, mailboxIdOf, parseAuthorizationHeader, parseTokenTimestamp, tokenHmacMatches } from '../../../shared/src/protocol/index.ts';
import type { Mailbox } from '../store/mailboxes.ts';
import { PROCESS_CLOCKS_APART_MS } from './clocks.ts';
import { ForbiddenError, TooManyRequestsError } from './errors.ts';
import type { Services } from './services.ts';

/** How far a token's timestamp may be from the server's clock, either way. */
export const TOKEN_WINDOW_MS = 2 * 60 * 60 * 1000;
/**
 * A used token is remembered for as long as its timestamp keeps it acceptable (and a margin for
 * API processes whose clocks differ): it cannot be replayed after that anyway. Most clients'
 * clocks are right, so that is about two hours, not the four a token could span: Redis holds
 * one per request for that long (operations.md's sizing).
 */
const USED_TOKEN_MARGIN_MS = PROCESS_CLOCKS_APART_MS;
/**
 * How long after its first use a token is accepted again for the very same request, if that is
 * one a repeat cannot harm: mesh-client retries with the identical header when an answer is
 * lost, which it may be after the server has sent it whole. It waits up to 10 minutes for an
 * answer (its read timeout), after a request that may itself have taken up to the server's
 * 15-minute request timeout; the window is counted from the first try's start.
 */
export const REPEAT_WINDOW_MS = 30 * 60_000;

export interface MailboxCredentials {
  /** CN of the verified client certificate (TLS has already checked it against the CA). */
  readonly certificateCommonName: string | undefined;
  /** The mailbox named in the request path. */
  readonly mailboxId: string;
  readonly authorization: string | undefined;
  /** What is asked: method, path and query. A token is for one request; its identical retry may repeat it. */
  readonly request: string;
  /** Whether doing the request twice does no harm (everything but creating a message). */
  readonly repeatable: boolean;
  /**
   * The id of what the request is to create, kept with the claim: a send's message (its
   * identical retry is a repeat all the same, to be told that message once it exists rather than
   * send it twice), or a chunk upload's copy of its chunk (its retry can tell whether that copy
   * is the one recorded).
   */
  readonly creates?: string;
}

export interface AuthenticatedMailbox {
  readonly mailbox: Mailbox;
  /** Claimed for this request; give it back with `usedTokens.release` if the request is not served. */
  readonly token: AuthToken;
  /** The token was used before, for this same request (a client's retry): nothing was claimed now. */
  readonly repeated: boolean;
  /** A repeated request: what its first try was to create (see MailboxCredentials.creates). */
  readonly firstTryCreates: string | undefined;
}

/**
 * Both factors must hold: the certificate is authorised for the mailbox, and the NHSMESH
 * token is valid, fresh and unused (or used a moment ago for this same request, which may be
 * repeated: a client's retry). Every failure is the same ForbiddenError.
 */
export async function authenticateMailbox(services: Services, credentials: MailboxCredentials): Promise<AuthenticatedMailbox> {
  // ASCII letters only, as the certificate's below: upper-cased, `alıce01` in a path would be ALICE01.
  const mailboxId = mailboxIdOf(credentials.mailboxId);
  const token = parseAuthorizationHeader(credentials.authorization);
  if (!mailboxId || !token || token.mailboxId !== mailboxId) throw new ForbiddenError('no valid token for the mailbox');

  const now = services.now();
  const issuedAt = parseTokenTimestamp(token.timestamp);
  if (!issuedAt || Math.abs(now.getTime() - issuedAt.getTime()) > TOKEN_WINDOW_MS) {
    throw new ForbiddenError('token timestamp out of window');
  }
  const keepClaimMs = issuedAt.getTime() + TOKEN_WINDOW_MS + USED_TOKEN_MARGIN_MS - now.getTime();
  // A CN another CA signed in look-alike letters names no mailbox (mailboxIdOf).
  const commonName = credentials.certificateCommonName;
  const certificateName = commonName === undefined ? undefined : mailboxIdOf(commonName);
  if (!certificateName || !(await certificateMayActFor(services, certificateName, mailboxId))) {
    throw new ForbiddenError('certificate not for the mailbox');
  }
  // Before the password is checked, and before the request counts against the mailbox.
  const refusedBefore = loginRefusal(services, certificateName, now);
  if (refusedBefore) throw refusedBefore;
  // Read the mailbox, claim the token and count the request at once: one round trip to Redis
  // (the commands are pipelined) instead of three on every request. A claim turns out
  // unwarranted only for a refused request, and is then given back.
  const limited = services.maxRequestsPerSecond > 0;
  const [found, claim, counted] = await Promise.allSettled([
    services.mailboxes.get(mailboxId),
    services.usedTokens.claim(token, { request: credentials.request, at: now, creates: credentials.creates }, keepClaimMs),
    limited ? services.rateLimits.countRequest(mailboxId, now) : Promise.resolve(0),
  ]);
  const claimed = claim.status === 'fulfilled' && claim.value === undefined;
  const refuse = async (error: unknown): Promise<never> => {
    if (claimed) await services.usedTokens.release(token);
    throw error;
  };
  if (found.status === 'rejected') return refuse(found.reason);
  if (claim.status === 'rejected') throw claim.reason;
  if (counted.status === 'rejected') return refuse(counted.reason);
  const count = counted.value;
  const passwordMatches = (mailbox: Mailbox | undefined): boolean => mailbox !== undefined && tokenHmacMatches(services.sharedKey, token, mailbox.password);
  // The mailbox may have been read a moment ago: a password just changed or a mailbox just
  // reactivated is looked up again before the request is refused. A token that does not match
  // counts as a failed login meanwhile, so that guesses sent together are refused past the
  // limit (see LoginFailures). One that matches a disabled mailbox is no guess: counted, a
  // system polling its disabled mailbox would have its certificate refused for every mailbox
  // it acts for, its own included. The HMAC is computed once per mailbox read.
  const known = found.value;
  const matchesKnown = passwordMatches(known);
  if (!matchesKnown) services.loginFailures.suspect(certificateName, now);
  const mailbox = matchesKnown && known?.active ? known : await services.mailboxes.get(mailboxId, { fresh: true }).catch(refuse);
  const matches = mailbox === known ? matchesKnown : passwordMatches(mailbox);
  if (!matchesKnown && matches) services.loginFailures.withdraw(certificateName, now);
  if (mailbox === undefined || !matches || !mailbox.active) {
    // A refused login counts against the certificate, not against the mailbox's requests per
    // second: a certificate granted the mailbox, without its password, could use them up.
    await Promise.allSettled([
      matches ? undefined : services.loginFailures.confirm(certificateName, now),
      limited ? services.rateLimits.countRequest(mailboxId, now, -1) : undefined,
    ]);
    return refuse(loginRefusal(services, certificateName, now) ?? new ForbiddenError(mailbox === undefined ? 'unknown mailbox' : matches ? 'mailbox inactive' : 'wrong password'));
  }
  // A right password among guesses sent together, come after the one past the limit.
  const refusedMeanwhile = loginRefusal(services, certificateName, now);
  if (refusedMeanwhile) return refuse(refusedMeanwhile);
  const earlier = claim.value;
  const repeated =
    earlier !== undefined &&
    (credentials.repeatable || earlier.creates !== undefined) &&
    earlier.sameRequest &&
    now.getTime() - earlier.at.getTime() <= REPEAT_WINDOW_MS;
  if (!claimed && !repeated) throw new ForbiddenError('token used before');
  // 429 is a retryable status: the token is given back, so the client's retry is accepted.
  if (limited && count > services.maxRequestsPerSecond) return refuse(new TooManyRequestsError(1));
  return { mailbox, token, repeated, firstTryCreates: repeated ? earlier.creates : undefined };
}

/** The 429 of a certificate past its failed logins, until its minute ends; undefined while it is not. */
function loginRefusal(services: Services, certificateName: string, now: Date): TooManyRequestsError | undefined {
  const seconds = services.loginFailures.refusedFor(certificateName, now);
  return seconds > 0 ? new TooManyRequestsError(seconds) : undefined;
}

/** The certificate's own mailbox, or one it was granted while that mailbox is active (a disabled one acts for nobody). */
async function certificateMayActFor(services: Services, certificateName: string, mailboxId: string): Promise<boolean> {
  if (certificateName === mailboxId) return true;
  if (!(await services.mailboxes.isGranted(certificateName, mailboxId))) return false;
  return (await services.mailboxes.get(certificateName))?.active === true;
}
