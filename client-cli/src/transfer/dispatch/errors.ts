/** Refused for what the file or its message says: sending it again as it is cannot succeed (it goes to `failed/`). */
export class RefusedFileError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'RefusedFileError';
  }
}

/** The setup (--to, --workflow) is wrong, not the file: every file would be refused alike, so they stay. */
export class DispatchSetupError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DispatchSetupError';
  }
}

/** The file changed after its last chunk was read: the message holds only what there was, and the file stays. */
export class ChangedAfterSendError extends Error {
  readonly messageId: string;

  constructor(file: string, messageId: string, bytes: number) {
    super(
      `${file} changed while it was being sent: message ${messageId} holds its first ${bytes} bytes; ` +
        'the whole file goes again once it stops changing (write files elsewhere and rename them in)',
    );
    this.name = 'ChangedAfterSendError';
    this.messageId = messageId;
  }
}

/**
 * A one-chunk send whose answer never came (the run cut short, the connection broken), not
 * found on the server by its local id: the server may yet record it, so it is not sent again
 * before `resendAt`. A run before then looks for it again; `--watch` waits for `resendAt`.
 */
export class SendInDoubtError extends Error {
  readonly resendAt: Date;

  constructor(file: string, localId: string, attemptedAt: Date, resendAt: Date) {
    super(
      `${file} went at ${attemptedAt.toISOString()} and its answer never came; no message carries its local id ${localId} yet. ` +
        `It is not sent again before ${resendAt.toISOString()} (were it still on its way, it would arrive twice); a pass from then looks for it once more, and sends it if no message carries it`,
    );
    this.name = 'SendInDoubtError';
    this.resendAt = resendAt;
  }
}
