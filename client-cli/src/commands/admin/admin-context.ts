import { userInfo } from 'node:os';
import { localServicesStatus } from '../../../../scripts/services/index.ts';
import { resolveBackends } from '../../../../server/src/backends.ts';
import { DEFAULT_MAILBOX_CACHE_MS, loadBackendConfig, refuseOneBackendLocal, SecretKeyMismatchError, suspectedTypos, typoWarning } from '../../../../server/src/config.ts';
import { createS3Client } from '../../../../server/src/connections.ts';
import { AuditLog } from '../../../../server/src/store/audit-log.ts';
import { CertificateStore } from '../../../../server/src/store/certificates.ts';
import { redisKeys } from '../../../../server/src/store/keys.ts';
import { LifecycleSchedule } from '../../../../server/src/store/lifecycle-schedule.ts';
import { MailboxStore } from '../../../../server/src/store/mailboxes.ts';
import { MessageStore } from '../../../../server/src/store/messages.ts';
import { PasswordCipher } from '../../../../server/src/store/password-cipher.ts';
import { PayloadStore } from '../../../../server/src/store/payloads.ts';
import { refuseRedisOtherThanSet } from '../../../../server/src/store/redis-target-check.ts';
import { longestMailboxCacheMs } from '../../../../server/src/store/process-settings.ts';
import { describeRedisTarget, openRedis, REDIS_SILENCE_TIMEOUT_MS } from '../../../../server/src/store/redis-client.ts';
import { START_UP_ANSWER_MS, within } from '../../../../server/src/time-limit.ts';

export interface AdminStores {
  readonly mailboxes: MailboxStore;
  readonly messages: MessageStore;
  readonly auditLog: AuditLog;
  readonly certificates: CertificateStore;
  readonly schedule: LifecycleSchedule;
  /** Adds an admin action to the audit log, with the operating-system user as the actor. */
  readonly audit: (action: string, subject: string, detail?: string) => Promise<void>;
  /** How long a change to a mailbox may go unseen by the running processes (their longest mailbox cache time; the default when none runs). */
  readonly mailboxCacheMs: () => Promise<number>;
}

let toldOfLocalServices = false;
let toldOfEnvironment = false;

/**
 * Admin commands act on the deployment's own Redis (MESHBOX_REDIS_URL, or the local
 * development services when it is unset), the same state the server reads. They refuse, before anything is
 * changed, a secret key other than the one the directory's passwords are encrypted under.
 */
export async function withAdminStores<T>(action: (stores: AdminStores) => Promise<T>): Promise<T> {
  const config = loadBackendConfig();
  if (!toldOfEnvironment) {
    toldOfEnvironment = true;
    // As the server says at start: a misspelt MESHBOX_REDIS_PREFIX would have the command act on the default prefix's state.
    for (const typo of suspectedTypos(process.env)) console.error(`warning: ${typoWarning(typo)}`);
  }
  if (!config.redisUrl && !toldOfLocalServices) {
    toldOfLocalServices = true;
    // As the server says at start: an admin machine or a cron job without the deployment's settings would change another Redis without a word.
    console.error("warning: MESHBOX_REDIS_URL is not set: acting on the local development services (npm run setup's), not a deployment's Redis");
  }
  // Redis is all these stores use: a deployment's is enough, without its object storage settings (withAdminPayloads has those).
  const redisUrl = config.redisUrl ?? (await resolveBackends(config)).redisUrl;
  // A Redis that takes the connection and never answers (frozen, a proxy whose backend is gone)
  // must fail the command, not hold it for ever: a connection silent this long is dropped.
  const redis = openRedis({ ...config, redisUrl }, { maxRetriesPerRequest: 2, lazyConnect: true, socketTimeout: REDIS_SILENCE_TIMEOUT_MS });
  // Heard here, or ioredis prints it with a stack trace; the first one says why the connection failed.
  let connectionError: Error | undefined;
  redis.on('error', (error: Error) => (connectionError ??= error));
  try {
    await within(redis.connect(), START_UP_ANSWER_MS).catch((error: unknown) => {
      throw new Error(`cannot reach Redis at ${describeRedisTarget({ ...config, redisUrl })}: ${(connectionError ?? (error as Error)).message}`);
    });
    // As the server: a database Redis does not have leaves ioredis on database 0, another deployment's maybe.
    await within(refuseRedisOtherThanSet(redis, { ...config, redisUrl }), START_UP_ANSWER_MS);
    const keys = redisKeys(config.redisPrefix);
    const auditLog = new AuditLog(redis, keys);
    const actor = `admin:${adminName()}`;
    const mailboxes = new MailboxStore(redis, keys, new PasswordCipher(config.secretKey), {
      onUnreadable: (error) => console.error(`warning: left out: ${error.message}`),
    });
    if (!(await mailboxes.secretKeyMatches())) {
      throw new SecretKeyMismatchError(process.env, config.redisPrefix, "nothing was changed: give admin commands the server's MESHBOX_SECRET_KEY or MESHBOX_SECRET_KEY_FILE");
    }
    return await action({
      mailboxes,
      messages: new MessageStore(redis, keys),
      auditLog,
      certificates: new CertificateStore(redis, keys),
      schedule: new LifecycleSchedule(redis, keys),
      audit: (auditAction, subject, detail) => auditLog.record({ action: `admin.${auditAction}`, actor, subject, ...(detail ? { detail } : {}) }),
      mailboxCacheMs: async () => (await longestMailboxCacheMs(redis, keys)) ?? DEFAULT_MAILBOX_CACHE_MS,
    });
  } finally {
    redis.disconnect();
  }
}

/**
 * The deployment's object storage (MESHBOX_S3_*), for a command that reads the bucket as well as
 * Redis (withAdminStores). Its settings go with MESHBOX_REDIS_URL, as the server's do: both set,
 * or neither for the local development services; one without the other would pair a
 * deployment's Redis with a development bucket.
 */
export async function withAdminPayloads<T>(action: (payloads: PayloadStore) => Promise<T>): Promise<T> {
  const config = loadBackendConfig();
  refuseOneBackendLocal(config);
  const { s3: settings } = await resolveBackends(config);
  const s3 = createS3Client(settings);
  try {
    return await action(new PayloadStore(s3, settings.bucket));
  } finally {
    s3.destroy();
  }
}

/**
 * Records an admin action in the audit log where the deployment's Redis is at hand. A command
 * that works on the PKI folder alone (`ca init`, `cert server`) may run before any Redis exists,
 * or on an offline machine: there it says on stderr that the action was not recorded, and why.
 * Without MESHBOX_REDIS_URL it records in the local development Redis only if that runs: a CA
 * machine is not to have services started (nor redis-server installed) for the record.
 */
export async function auditIfReachable(action: string, subject: string, detail: string): Promise<void> {
  const record = async (): Promise<void> => {
    if (!loadBackendConfig().redisUrl && !(await localServicesStatus()).redis) throw new Error('MESHBOX_REDIS_URL is not set, and no local development Redis runs');
    await withAdminStores(({ audit }) => audit(action, subject, detail));
  };
  await record().catch((error: unknown) => console.error(`warning: not recorded in the audit log: ${(error as Error).message.split('\n').join(' ')}`));
}

/**
 * Who is running the command, for the audit trail: the login name, or where the user has no
 * entry in the passwd database (a container run as an arbitrary uid), what the environment
 * says, else the uid.
 */
function adminName(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER || process.env.LOGNAME || `uid ${process.getuid?.() ?? 'unknown'}`;
  }
}
