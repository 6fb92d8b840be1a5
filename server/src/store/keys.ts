/**
 * Every Redis key meshbox uses, built in one place. The prefix lets several deployments
 * (or test runs) share one Redis without seeing each other's data.
 *
 * On a Redis Cluster a script or transaction may only touch keys of one hash slot, so each
 * key carries a hash tag (`{…}`) naming what it belongs to, and every atomic step touches
 * keys of one tag only:
 * - `{directory}`: mailboxes and their lookup indexes (small, read-mostly, changed together);
 * - `{<message id>}`: a message's record (with its chunk sizes and a small payload) and its id reservation;
 * - `{<mailbox id>}`: a mailbox's inbox, inbox counter and the ids that left the inbox lately,
 *   local-id index, request counters, used tokens and certificates.
 * - `{schedule-<n>}`: one shard of the lifecycle schedule, with its leases and failures;
 * - `{audit-<n>}`: one shard of the audit log.
 * The revocation list and the certificates' holders and expiry dates are one key each.
 */
export interface RedisKeys {
  readonly mailbox: (mailboxId: string) => string;
  readonly mailboxIndex: string;
  /** A value only the directory's MESHBOX_SECRET_KEY decrypts as expected (see MailboxStore.secretKeyMatches). */
  readonly secretKeyCheck: string;
  readonly certificateGrants: (commonName: string) => string;
  readonly odsMailboxes: (odsCode: string) => string;
  readonly workflowReceivers: (workflowId: string) => string;
  /** Counts the changes to what lookups answer, so a process knows when a lookup it keeps is stale. */
  readonly directoryVersion: string;
  /** The settings each running server process reports, of those every process must share (process id -> report). */
  readonly processSettings: string;
  readonly message: (messageId: string) => string;
  readonly messageIdReservation: (messageId: string) => string;
  readonly inbox: (mailboxId: string) => string;
  readonly inboxSequence: (mailboxId: string) => string;
  /** The ids that left a mailbox's inbox lately, by when: a delivery landing late does not list them again. */
  readonly inboxLeft: (mailboxId: string) => string;
  readonly localIds: (mailboxId: string, localId: string) => string;
  /** One shard of the audit log: written on every send, download and acknowledgement, so spread over the cluster. */
  readonly auditLog: (shard: number) => string;
  readonly mailboxCertificates: (mailboxId: string) => string;
  readonly revokedCertificates: string;
  /** Serial -> the mailbox (or monitoring name) it was issued to. */
  readonly certificateHolders: string;
  /** Serial -> when the certificate expires (its notAfter, ms). */
  readonly certificateExpiry: string;
  /** Serial -> its public key's fingerprint (certificates recorded since fingerprints were kept). */
  readonly certificateKeys: string;
  readonly requestCount: (mailboxId: string, second: number) => string;
  /** Failed logins of a certificate (by its name) in one minute. */
  readonly loginFailures: (certificateName: string, minute: number) => string;
  readonly usedToken: (mailboxId: string, nonce: string, nonceCount: string) => string;
  readonly lifecycleSchedule: (shard: number) => string;
  /** The checks of a schedule shard claimed by a worker and not yet released (id -> lease end), in the shard's slot. */
  readonly lifecycleLeases: (shard: number) => string;
  /** The failing checks of a schedule shard (id -> the last failure, JSON), in the shard's slot. */
  readonly lifecycleFailures: (shard: number) => string;
}

export function redisKeys(prefix: string): RedisKeys {
  const directory = `${prefix}{directory}:`;
  return {
    mailbox: (mailboxId) => `${directory}mailbox:${mailboxId}`,
    mailboxIndex: `${directory}mailboxes`,
    secretKeyCheck: `${directory}secret-key-check`,
    certificateGrants: (commonName) => `${directory}cert-grants:${commonName}`,
    odsMailboxes: (odsCode) => `${directory}ods-mailboxes:${odsCode.toUpperCase()}`,
    workflowReceivers: (workflowId) => `${directory}workflow-receivers:${workflowId}`,
    directoryVersion: `${directory}version`,
    processSettings: `${directory}process-settings`,
    message: (messageId) => `${prefix}message:{${messageId}}`,
    messageIdReservation: (messageId) => `${prefix}message-id-reservation:{${messageId}}`,
    inbox: (mailboxId) => `${prefix}inbox:{${mailboxId}}`,
    inboxSequence: (mailboxId) => `${prefix}inbox-sequence:{${mailboxId}}`,
    inboxLeft: (mailboxId) => `${prefix}inbox-left:{${mailboxId}}`,
    // Local ids are free text chosen by the sender; hashing is not needed as Redis keys are binary-safe.
    localIds: (mailboxId, localId) => `${prefix}local-id:{${mailboxId}}:${localId}`,
    auditLog: (shard) => `${prefix}audit:{audit-${shard}}`,
    mailboxCertificates: (mailboxId) => `${prefix}mailbox-certificates:{${mailboxId}}`,
    revokedCertificates: `${prefix}revoked-certificates`,
    certificateHolders: `${prefix}certificate-holders`,
    certificateExpiry: `${prefix}certificate-expiry`,
    certificateKeys: `${prefix}certificate-keys`,
    requestCount: (mailboxId, second) => `${prefix}request-count:{${mailboxId}}:${second}`,
    loginFailures: (certificateName, minute) => `${prefix}login-failures:{${certificateName}}:${minute}`,
    usedToken: (mailboxId, nonce, nonceCount) => `${prefix}used-token:{${mailboxId}}:${nonce}:${nonceCount}`,
    lifecycleSchedule: (shard) => `${prefix}lifecycle-schedule:{schedule-${shard}}`,
    lifecycleLeases: (shard) => `${prefix}lifecycle-leases:{schedule-${shard}}`,
    lifecycleFailures: (shard) => `${prefix}lifecycle-failures:{schedule-${shard}}`,
  };
}
