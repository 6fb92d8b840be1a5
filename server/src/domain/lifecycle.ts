import { MeshErrorCodes } from '../../../shared/src/protocol/index.ts';
import type { MessageRecord, MessageStatusDetail, MessageStore } from '../store/messages.ts';
import { reserveMessageId } from './message-ids.ts';
import type { Services } from './services.ts';

/** How long each stage of a message's life may last; all configurable. */
export interface RetentionPeriods {
  /** An accepted message not acknowledged within this becomes undeliverable (MESH: 5 days). */
  readonly inboxExpiryMs: number;
  /** An upload not completed within this is abandoned and its chunks deleted. */
  readonly uploadExpiryMs: number;
  /** Payload objects are kept this long after acknowledgement, expiry or abandonment. */
  readonly payloadRetentionMs: number;
  /** Tracking records are kept this long after delivery (MESH: 30 days). */
  readonly messageRetentionMs: number;
  /** Audit entries are kept at least this long, a few a little longer (AuditLog.trimBefore); 0: for ever, trimmed by the operator. */
  readonly auditRetentionMs: number;
  /**
   * A new message is first looked at this long after its send began, once its request has
   * surely ended (longer than the request timeout), and an uploading one again as often: a
   * request cut off after the message was accepted, before it reached the inbox, leaves it to
   * that check to deliver.
   */
  readonly deliveryCheckMs: number;
}

/** Runs a message's next lifecycle check at a given time (one schedule entry per message). */
export interface LifecycleScheduler {
  /** For a new message id: one cheap call on the send path. Leaves an existing schedule alone (false). */
  start(messageId: string, at: Date): Promise<boolean>;
  /** Moves an existing message's next check to `at` (or starts one). */
  schedule(messageId: string, at: Date): Promise<void>;
  /** Moves the next check from `from` to the later `to`, unless it has changed since. */
  postpone(messageId: string, from: Date, to: Date): Promise<void>;
}

export type LifecycleStep =
  | { readonly kind: 'wait'; readonly until: Date }
  | { readonly kind: 'abandon-upload' }
  /**
   * Undeliverable: not acknowledged in time, its recipient's mailbox deactivated (MESH returns
   * what waits in it), or its payload lost from object storage (nobody could ever download it).
   */
  | { readonly kind: 'expire'; readonly because: 'not-collected' | 'recipient-deactivated' | 'payload-lost' }
  | { readonly kind: 'finish-expiry' }
  | { readonly kind: 'purge-payload' }
  | { readonly kind: 'purge-message' };

const at = (from: Date, ms: number): Date => new Date(from.getTime() + ms);

/** When an accepted message leaves its recipient's inbox unless acknowledged (tracking shows it too). */
export function inboxExpiryOf(message: Pick<MessageRecord, 'acceptedAt' | 'createdAt'>, periods: RetentionPeriods): Date {
  return at(message.acceptedAt ?? message.createdAt, periods.inboxExpiryMs);
}

/** A wait cut short at `latest`, when the message must be looked at again; any other step as it is. */
function lookAgainBy(step: LifecycleStep, latest: Date): LifecycleStep {
  return step.kind === 'wait' && step.until > latest ? { kind: 'wait', until: latest } : step;
}

/**
 * A waiting message is looked at no more often than this many times over its inbox expiry: a
 * short payload retention would otherwise have every message waiting in every inbox checked
 * again and again (60 s: a million waiting, 17,000 checks a second).
 */
const LOOKS_PER_INBOX_EXPIRY = 10;

/**
 * When an accepted message waiting in the inbox is next looked at: at its expiry, and at least
 * once a payload retention before that (or a tenth of the inbox expiry, if longer): an
 * acknowledgement asks for its payload's purge a retention later by bringing the next check
 * forward, and a step that read the message just before it can overwrite that (docs/reliability.md).
 */
export function acceptedNextCheck(message: Pick<MessageRecord, 'acceptedAt' | 'createdAt'>, now: Date, periods: RetentionPeriods): Date {
  const lookAgainAfter = Math.max(periods.payloadRetentionMs, periods.inboxExpiryMs / LOOKS_PER_INBOX_EXPIRY);
  return new Date(Math.min(inboxExpiryOf(message, periods).getTime(), at(now, lookAgainAfter).getTime()));
}

/** What a check asks afresh of an accepted message besides its record (of any other, both hold). */
export interface WaitingConditions {
  readonly recipientActive: boolean;
  /** A chunk a download found missing from object storage is missing still (asked only when one was found so). */
  readonly payloadLost: boolean;
}

/**
 * What is due for a message now: a pure function of its state, whether its recipient's mailbox
 * is active and whether its payload is lost (asked only of an accepted message), the clock and
 * the periods.
 */
export function nextLifecycleStep(message: MessageRecord, conditions: WaitingConditions, now: Date, periods: RetentionPeriods): LifecycleStep {
  const due = (when: Date, step: LifecycleStep): LifecycleStep => (now < when ? { kind: 'wait', until: when } : step);
  if (message.expiryPending) return { kind: 'finish-expiry' };
  switch (message.status) {
    case 'uploading':
      // Looked at again at least this often while the upload goes on: its last chunk may come,
      // and its request stop before delivering the message, at any moment.
      return lookAgainBy(due(at(message.createdAt, periods.uploadExpiryMs), { kind: 'abandon-upload' }), at(now, periods.deliveryCheckMs));
    case 'accepted':
      if (!conditions.recipientActive) return { kind: 'expire', because: 'recipient-deactivated' };
      if (conditions.payloadLost) return { kind: 'expire', because: 'payload-lost' };
      return lookAgainBy(due(inboxExpiryOf(message, periods), { kind: 'expire', because: 'not-collected' }), acceptedNextCheck(message, now, periods));
    case 'acknowledged':
    case 'undeliverable':
    case 'error':
      // A report has no payload, but is downloadable as any message until its payload is purged.
      if (!message.payloadPurgedAt && (message.totalChunks > 0 || message.type === 'REPORT')) {
        // Nobody can ever download an abandoned upload: its chunks go at once.
        return message.status === 'error' ? { kind: 'purge-payload' } : due(at(message.statusAt, periods.payloadRetentionMs), { kind: 'purge-payload' });
      }
      return due(at(message.acceptedAt ?? message.createdAt, periods.messageRetentionMs), { kind: 'purge-message' });
  }
}

/**
 * Brings the next check of every message waiting in a mailbox's inbox forward to `now`: the
 * lifecycle worker then looks at each at its next sweep (a deactivated mailbox's messages go
 * back to their senders as undeliverable). Returns their ids.
 */
export async function checkInboxNow(
  stores: { readonly messages: Pick<MessageStore, 'inboxPage'>; readonly schedule: Pick<LifecycleScheduler, 'schedule'> },
  mailboxId: string,
  now: Date,
): Promise<string[]> {
  const ids: string[] = [];
  for (let after: number | undefined, more = true; more; ) {
    const page = await stores.messages.inboxPage(mailboxId, INBOX_BATCH, after);
    await Promise.all(page.messageIds.map((id) => stores.schedule.schedule(id, now)));
    ids.push(...page.messageIds);
    after = page.next;
    more = page.next !== undefined;
  }
  return ids;
}

/** Inbox entries read at a time when every message of an inbox is to be looked at. */
const INBOX_BATCH = 1000;

/**
 * A report's first check, as for any message delivered now: an acknowledgement of it cut off
 * after its status, and not tried again, leaves it listed only until then, not a whole inbox expiry.
 */
function reportCheckAfter(services: Services, now: Date): Date {
  return acceptedNextCheck({ acceptedAt: now, createdAt: now }, now, services.periods);
}

async function purgePayload(services: Services, message: MessageRecord, now: Date): Promise<void> {
  // A small message's payload is its record's, never in object storage (its id is claimed by the
  // record, which no reserved id can have): asking storage would cost a request each, at every
  // purge of a national day's small messages. A report has no payload.
  if (message.inlinePayload) await services.messages.deleteInlinePayload(message.id);
  else if (message.totalChunks > 0) await services.payloads.deleteMessage(message.id);
  await services.messages.markPayloadPurged(message.id, now);
}

/**
 * Whether a mailbox is active, read afresh and without its password (which one stored under
 * another secret key could not give); one gone is not.
 */
async function mailboxActive(services: Services, mailboxId: string): Promise<boolean> {
  return (await services.mailboxes.listing(mailboxId))?.active === true;
}

export function undeliveredDescription(inboxExpiryMs: number): string {
  const days = inboxExpiryMs / 86_400_000;
  const period = Number.isInteger(days) ? `${days} days` : `${Math.round(inboxExpiryMs / 1000)} seconds`;
  return MeshErrorCodes.undeliveredMessage.description.replace('{days} days', period);
}

/** What tracking, and the sender's report, say of a message expired for this reason. */
function undeliverableDetail(because: Extract<LifecycleStep, { kind: 'expire' }>['because'], periods: RetentionPeriods): Omit<MessageStatusDetail, 'success'> {
  switch (because) {
    case 'not-collected':
      return { ...MeshErrorCodes.undeliveredMessage, description: undeliveredDescription(periods.inboxExpiryMs) };
    case 'recipient-deactivated':
      return MeshErrorCodes.undeliveredMailboxDeactivated;
    case 'payload-lost':
      return MeshErrorCodes.payloadLost;
  }
}

/**
 * Whether a waiting message's payload is lost, asked only of one a download found a chunk of
 * missing (downloadChunk): of object storage afresh, as a store that answers 404 for a moment
 * (eventually consistent), or an object put back since, must not fail a good message. One there
 * after all is noted missing no more. A failure to ask fails the check, which is retried; but
 * not past the message's inbox expiry, which a store failing for days must not hold back.
 */
async function payloadLost(services: Services, message: MessageRecord, now: Date): Promise<boolean> {
  const chunkNumber = message.missingChunk;
  if (message.status !== 'accepted' || chunkNumber === undefined) return false;
  const { version } = await services.messages.chunkSource(message.id, chunkNumber);
  const present = await services.payloads.hasChunk({ messageId: message.id, number: chunkNumber, version }).catch((error: unknown) => {
    if (now < inboxExpiryOf(message, services.periods)) throw error;
    return undefined;
  });
  if (present === undefined) return false;
  if (!present) return true;
  await services.messages.forgetMissingChunk(message.id, chunkNumber, message.missingChunkNote);
  return false;
}

/**
 * Carries out whatever is due for a message, step after step, and says when to look again
 * (undefined: its life is over). Every step is idempotent, so a job that crashes and runs
 * again never sends a second report or loses a message.
 */
export async function advanceLifecycle(services: Services, messageId: string): Promise<Date | undefined> {
  for (;;) {
    const now = services.now();
    const message = await services.messages.get(messageId);
    if (!message) {
      // Chunk 1 of a send may still be streaming in (looked at again as an upload is: a send that
      // records its message after this check, and is cut off before delivering it, leaves the
      // delivery to the next); otherwise only orphaned objects (a send that failed after storing
      // its payload) can be left, and they go.
      if (await services.messages.isReserved(messageId)) return at(now, Math.min(services.periods.deliveryCheckMs, services.periods.uploadExpiryMs));
      // Recording a message ends its reservation: one recorded between the two reads is there now.
      if (await services.messages.get(messageId)) continue;
      await services.payloads.deleteMessage(messageId);
      return undefined;
    }
    // An acknowledgement cut off between its status and the inbox (a client that did not retry
    // it) left the message listed, though it is to be downloaded no more: it leaves now.
    if (message.status !== 'accepted' && message.status !== 'uploading') await services.messages.leaveInbox(messageId, message.recipient);
    // A mailbox that is gone counts as deactivated: nobody can collect what waits for it (read
    // afresh: the deactivation that brought this check forward may be a moment old).
    const recipientActive =
      message.status !== 'accepted' || message.expiryPending || (await mailboxActive(services, message.recipient));
    // A deactivated recipient's message goes back all the same: object storage need not be asked.
    const conditions = { recipientActive, payloadLost: recipientActive && (await payloadLost(services, message, now)) };
    const step = nextLifecycleStep(message, conditions, now, services.periods);
    switch (step.kind) {
      case 'wait':
        // A send or final chunk cut off between acceptance and delivery is delivered here, and
        // indexed by its local id if that step failed (repeating either changes nothing). Only
        // while it can be waiting: a check that read a message since purged (its lease lost to
        // another worker meanwhile) would index an id no record answers, for ever.
        if (message.status === 'accepted' || message.status === 'uploading') {
          await Promise.all([
            message.status === 'accepted' ? services.messages.deliverChecked(messageId, message.recipient) : undefined,
            services.messages.indexLocalId(messageId, message),
          ]);
        }
        return step.until;
      case 'abandon-upload':
        // Unless its last chunk came in meanwhile (then it is accepted), the next round purges its chunks.
        await services.messages.abandon(messageId, MeshErrorCodes.uploadDiscarded, now);
        break;
      case 'expire': {
        // The report's own lifecycle is scheduled first, so a crash right after cannot strand it.
        // A report that expires gets no report of its own, nor does a sender deactivated or gone
        // since: nobody could collect it (a deactivation returns what waits), or ever would.
        const reportable = message.sender !== '' && (await mailboxActive(services, message.sender));
        const report = reportable ? await reserveMessageId(services, reportCheckAfter(services, now)) : undefined;
        const expired = await services.messages.expire(message, report?.messageId ?? '', undeliverableDetail(step.because, services.periods), now);
        // Acknowledged, or expired by another check, since it was read: the report id is nobody's,
        // and held a day, its check would come again and again. Unless this very expiry ran
        // already (ioredis sent it again after a lost answer) and the record names it.
        if (!expired && report && (await services.messages.get(messageId))?.reportId !== report.messageId) await report.reservation.release();
        break;
      }
      case 'finish-expiry':
        // The report's first check was scheduled with its id's reservation, a day long: should
        // this step come after that check found nothing and ended the id's life, the report
        // recorded now would have no check, and wait in the sender's inbox for good. One still
        // there is left as it is.
        if (message.reportId) await services.lifecycle.start(message.reportId, reportCheckAfter(services, now));
        await services.messages.finishExpiry(message, now);
        // A sender deactivated since the expire step found it active: the deactivation's scans of
        // its inbox may have come before the report, which goes back at its check, brought forward
        // (as a send delivered to a recipient deactivated meanwhile).
        if (message.reportId && !(await mailboxActive(services, message.sender))) await services.lifecycle.schedule(message.reportId, now);
        break;
      case 'purge-payload':
        await purgePayload(services, message, now);
        break;
      case 'purge-message':
        // What an upload refused or overtaken may have left is a stored message's only.
        if (!message.inlinePayload && message.type !== 'REPORT') await services.payloads.deleteMessage(messageId);
        await services.messages.purge(message);
        return undefined;
    }
  }
}
