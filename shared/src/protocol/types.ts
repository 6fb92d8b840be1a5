/** The state of a message, as the tracking endpoint reports it (v2 spelling). */
export type MessageStatus = 'uploading' | 'accepted' | 'acknowledged' | 'undeliverable' | 'error';

export type MessageType = 'DATA' | 'REPORT';

/** v1 tracking spells statuses in title case. */
export function v1StatusName(status: MessageStatus): string {
  return status.charAt(0).toUpperCase() + status.slice(1);
}
