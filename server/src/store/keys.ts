/**
 * Every Redis key meshbox uses, built in one place. The prefix lets several deployments
 * (or test runs) share one Redis without seeing each other's data.
 */
export interface RedisKeys {
  readonly mailbox: (mailboxId: string) => string;
  readonly mailboxIndex: string;
  readonly certificateGrants: (commonName: string) => string;
  readonly odsMailboxes: (odsCode: string) => string;
  readonly workflowReceivers: (workflowId: string) => string;
  readonly message: (messageId: string) => string;
  readonly messageChunks: (messageId: string) => string;
  readonly messageIdReservation: (messageId: string) => string;
  readonly inlinePayload: (messageId: string) => string;
  readonly inbox: (mailboxId: string) => string;
  readonly outbox: (mailboxId: string) => string;
  readonly localIds: (mailboxId: string, localId: string) => string;
  readonly inboxSequence: string;
  readonly auditLog: string;
  readonly mailboxCertificates: (mailboxId: string) => string;
  readonly revokedCertificates: string;
  readonly requestCount: (mailboxId: string, second: number) => string;
  readonly usedToken: (mailboxId: string, nonce: string, nonceCount: string) => string;
}

export function redisKeys(prefix: string): RedisKeys {
  return {
    mailbox: (mailboxId) => `${prefix}mailbox:${mailboxId}`,
    mailboxIndex: `${prefix}mailboxes`,
    certificateGrants: (commonName) => `${prefix}cert-grants:${commonName}`,
    odsMailboxes: (odsCode) => `${prefix}ods-mailboxes:${odsCode.toUpperCase()}`,
    workflowReceivers: (workflowId) => `${prefix}workflow-receivers:${workflowId}`,
    message: (messageId) => `${prefix}message:${messageId}`,
    messageChunks: (messageId) => `${prefix}message-chunks:${messageId}`,
    messageIdReservation: (messageId) => `${prefix}message-id-reservation:${messageId}`,
    inlinePayload: (messageId) => `${prefix}inline-payload:${messageId}`,
    inbox: (mailboxId) => `${prefix}inbox:${mailboxId}`,
    outbox: (mailboxId) => `${prefix}outbox:${mailboxId}`,
    // Local ids are free text chosen by the sender; hashing is not needed as Redis keys are binary-safe.
    localIds: (mailboxId, localId) => `${prefix}local-id:${mailboxId}:${localId}`,
    inboxSequence: `${prefix}inbox-sequence`,
    auditLog: `${prefix}audit`,
    mailboxCertificates: (mailboxId) => `${prefix}mailbox-certificates:${mailboxId}`,
    revokedCertificates: `${prefix}revoked-certificates`,
    requestCount: (mailboxId, second) => `${prefix}request-count:${mailboxId}:${second}`,
    usedToken: (mailboxId, nonce, nonceCount) => `${prefix}used-token:${mailboxId}:${nonce}:${nonceCount}`,
  };
}
