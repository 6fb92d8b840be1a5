import { randomUUID } from 'node:crypto';
import type { ApiVersion } from '../../../../shared/src/protocol/index.ts';
import type { MailboxProfile } from '../../store/mailboxes.ts';

interface Rendered {
  /** The whole v2 body, the same for every asker. */
  v2?: Buffer;
  /** v1's results; each body has a query id of its own around them. */
  v1Results?: Buffer;
}

/**
 * Each answer rendered once, as bytes: the store hands out the same array while it keeps an
 * answer, and a national workflow's is megabytes of JSON. Rendering it on every request, and
 * writing it to the TLS socket as text, cost more than the rest of the request together.
 */
const rendered = new WeakMap<readonly MailboxProfile[], Rendered>();

function renderedOf(mailboxes: readonly MailboxProfile[]): Rendered {
  let known = rendered.get(mailboxes);
  if (!known) rendered.set(mailboxes, (known = {}));
  return known;
}

function v2Body(mailboxes: readonly MailboxProfile[]): Buffer {
  const known = renderedOf(mailboxes);
  return (known.v2 ??= Buffer.from(JSON.stringify({ results: mailboxes.map((mailbox) => ({ mailbox_id: mailbox.id, mailbox_name: mailbox.name })) })));
}

function v1Body(mailboxes: readonly MailboxProfile[]): Buffer {
  const known = renderedOf(mailboxes);
  const results = (known.v1Results ??= Buffer.from(
    JSON.stringify(mailboxes.map((mailbox) => ({ address: mailbox.id, description: mailbox.name, endpoint_type: 'MESH' }))),
  ));
  return Buffer.concat([Buffer.from(`{"query_id":"${randomUUID().replace(/-/g, '')}","results":`), results, Buffer.from('}')]);
}

/** Endpoint lookup, as JSON bytes: v2 mailbox items; v1 `address/description/endpoint_type` with a query id of its own. */
export function endpointLookupBody(mailboxes: readonly MailboxProfile[], version: ApiVersion): Buffer {
  return version === 2 ? v2Body(mailboxes) : v1Body(mailboxes);
}

/** Workflow search answers the same shape in both versions, as JSON bytes. */
export function workflowSearchBody(mailboxes: readonly MailboxProfile[]): Buffer {
  return v2Body(mailboxes);
}
