import type { InboxPage } from '../store/messages.ts';
import { countRequestCost } from './request-cost.ts';
import type { Services } from './services.ts';
import { workflowMatcher } from './workflow-filter.ts';

/**
 * A page counts against the mailbox's requests per second as one request for each this many
 * ids it may hold: measured, a page of 5,000 costs the server ~7 ms of CPU, a plain request
 * ~0.2–0.5 ms. So a client listing the largest pages in a loop is slowed by what they cost.
 */
const IDS_PER_REQUEST = 500;
/** With a workflow filter, each message on the page is read as well: a page of 5,000 ~20 ms. */
const FILTERED_IDS_PER_REQUEST = 100;

export interface InboxQuery {
  readonly maxResults: number;
  /** Opaque cursor from a previous page's `next`. */
  readonly continueFrom: string | undefined;
  /** v1's `continue_from`: the last message id of the page before (from the start when it has left the inbox). */
  readonly afterMessageId?: string | undefined;
  /** MESH workflow_filter; applied to each page, so a page may come back short (as in MESH). */
  readonly workflowFilter?: string | undefined;
}

export interface InboxListing extends InboxPage {
  readonly approximateCount: number;
}

/** The mailbox's messages ready to download, oldest first, a page at a time. */
export async function listInbox(services: Services, mailboxId: string, query: InboxQuery): Promise<InboxListing> {
  const matches = workflowMatcher(query.workflowFilter);
  // Counted by the page asked for, before it is read: one of it with the request itself.
  await countRequestCost(services, mailboxId, Math.ceil(query.maxResults / (matches ? FILTERED_IDS_PER_REQUEST : IDS_PER_REQUEST)), 1);
  const after =
    query.afterMessageId === undefined ? decodeCursor(query.continueFrom) : await services.messages.inboxPosition(mailboxId, query.afterMessageId);
  const [page, approximateCount] = await Promise.all([
    services.messages.inboxPage(mailboxId, query.maxResults, after),
    services.messages.inboxCount(mailboxId),
  ]);
  if (!matches) return { ...page, approximateCount };
  const workflows = await services.messages.workflowIds(page.messageIds);
  const messageIds = page.messageIds.filter((_, index) => matches(workflows[index] ?? ''));
  return { ...page, messageIds, approximateCount };
}

export async function countInbox(services: Services, mailboxId: string): Promise<number> {
  return services.messages.inboxCount(mailboxId);
}

/** Cursors are opaque to clients; one we did not issue starts from the beginning. */
export function encodeCursor(position: number): string {
  return Buffer.from(String(position)).toString('base64url');
}

function decodeCursor(cursor: string | undefined): number | undefined {
  if (cursor === undefined) return undefined;
  const position = Buffer.from(cursor, 'base64url').toString();
  return /^\d{1,15}$/.test(position) ? Number(position) : undefined;
}
