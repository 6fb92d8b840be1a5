/** The outbox folder's own subfolders: what went, what was refused, and the notes of sends in flight. */
export const SENT_FOLDER = 'sent';
export const FAILED_FOLDER = 'failed';
export const JOURNAL_FOLDER = '.meshbox-dispatch';
