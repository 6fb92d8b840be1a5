import { randomUUID } from 'node:crypto';
import type { ApiVersion } from '../../../../shared/src/protocol/index.ts';
import type { MailboxProfile } from '../../store/mailboxes.ts';

const mailboxItems = (mailboxes: readonly MailboxProfile[]) =>
  mailboxes.map((mailbox) => ({ mailbox_id: mailbox.id, mailbox_name: mailbox.name }));

/** Endpoint lookup: v2 mailbox items; v1 `address/description/endpoint_type` with a query id. */
export function endpointLookupBody(mailboxes: readonly MailboxProfile[], version: ApiVersion): Record<string, unknown> {
  if (version === 2) return { results: mailboxItems(mailboxes) };
  return {
    query_id: randomUUID().replace(/-/g, ''),
    results: mailboxes.map((mailbox) => ({ address: mailbox.id, description: mailbox.name, endpoint_type: 'MESH' })),
  };
}

/** Workflow search answers the same shape in both versions. */
export function workflowSearchBody(mailboxes: readonly MailboxProfile[]): Record<string, unknown> {
  return { results: mailboxItems(mailboxes) };
}
