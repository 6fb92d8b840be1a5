import type { TransferLimits } from './chunk-storage.ts';
import type { TransferSlots } from './transfer-slots.ts';
import type { LifecycleScheduler, RetentionPeriods } from './lifecycle.ts';
import type { LoginFailures } from './login-failures.ts';
import type { AuditLog } from '../store/audit-log.ts';
import type { CertificateStore } from '../store/certificates.ts';
import type { MailboxStore } from '../store/mailboxes.ts';
import type { MessageStore } from '../store/messages.ts';
import type { PayloadStore } from '../store/payloads.ts';
import type { RateLimitStore } from '../store/rate-limits.ts';
import type { ReplicaConfirmation } from '../store/replica-confirmation.ts';
import type { UsedTokenStore } from '../store/used-tokens.ts';

/** What the domain operations work with: the stores, the deployment's secrets and a clock. */
export interface Services {
  readonly mailboxes: MailboxStore;
  readonly messages: MessageStore;
  readonly payloads: PayloadStore;
  readonly usedTokens: UsedTokenStore;
  readonly audit: AuditLog;
  readonly certificates: CertificateStore;
  readonly rateLimits: RateLimitStore;
  /** Failed logins per certificate, and the certificates refused for them (this process's view). */
  readonly loginFailures: LoginFailures;
  /** Requests a mailbox may make per second (0: unlimited). */
  readonly maxRequestsPerSecond: number;
  /** The environment's shared HMAC key for Authorization tokens. */
  readonly sharedKey: string;
  readonly now: () => Date;
  /** A fresh random message id stamped with `at` (a seam like `now`: a test can offer ids that are taken). */
  readonly newMessageId: (at: Date) => string;
  readonly limits: TransferLimits;
  /** Transfers in progress per mailbox: to or from object storage, counted (limits.maxTransfersPerMailbox); small bodies arriving, by size. */
  readonly transfers: TransferSlots;
  readonly periods: RetentionPeriods;
  readonly lifecycle: LifecycleScheduler;
  /** Whether Redis has room for small payloads now (RedisMemoryWatch); when not, they go to object storage. */
  readonly redisRoomForPayloads: () => boolean;
  /** Whether a request's writes are on the Redis replicas asked for (none by default). */
  readonly replicas: ReplicaConfirmation;
}
