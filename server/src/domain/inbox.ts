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
/**
 * A v1 page with a workflow filter reads on past the page asked for, up to this many messages in
 * all, for its matches: v1 has no link to the next page, and continues from the last id shown,
 * so a page of none would leave the matches behind it out of reach.
 */
export const V1_FILTERED_SCAN_LIMIT = 20_000;

export interface InboxQuery {
  readonly maxResults: number;
  /** Opaque cursor from a previous page's `next`. */
  readonly continueFrom: string | undefined;
  /** v1's `continue_from`: the last message id of the page before (from the start when it has left the inbox). */
  readonly afterMessageId?: string | undefined;
  /** MESH workflow_filter; applied to each page, so a page may come back short (as in MESH). */
  readonly workflowFilter?: string | undefined;
  /** Read on for matches past the page (v1, which has no next link), up to V1_FILTERED_SCAN_LIMIT messages. */
  readonly fillFilteredPage?: boolean;
}

export interface InboxListing extends InboxPage {
  readonly approximateCount: number;
}

/** The mailbox's messages ready to download, oldest first, a page at a time. */
export async function listInbox(services: Services, mailboxId: string, query: InboxQuery): Promise<InboxListing> {
  const matches = workflowMatcher(query.workflowFilter);
  // Counted by the page asked for, before it is read: one of it with the request itself.
  const pageCost = Math.ceil(query.maxResults / (matches ? FILTERED_IDS_PER_REQUEST : IDS_PER_REQUEST));
  await countRequestCost(services, mailboxId, pageCost, 1);
  const after =
    query.afterMessageId === undefined ? decodeCursor(query.continueFrom) : await services.messages.inboxPosition(mailboxId, query.afterMessageId);
  const [page, approximateCount] = await Promise.all([
    services.messages.inboxPage(mailboxId, query.maxResults, after),
    services.messages.inboxCount(mailboxId),
  ]);
  if (!matches) return { ...page, approximateCount };
  const matching = async (ids: readonly string[]): Promise<string[]> => {
    const workflows = await services.messages.workflowIds(ids);
    return ids.filter((_, index) => matches(workflows[index] ?? ''));
  };
  const messageIds = await matching(page.messageIds);
  let { next } = page;
  for (let scanned = page.messageIds.length, counted = pageCost; query.fillFilteredPage && messageIds.length < query.maxResults && next !== undefined && scanned < V1_FILTERED_SCAN_LIMIT; ) {
    // Each page read on counts as the first did, the whole request at most the second's
    // allowance (countRequestCost): alone in its second it is served, where refused it would be
    // refused again on every retry, its inbox unchanged.
    await countRequestCost(services, mailboxId, counted + pageCost, counted);
    counted += pageCost;
    const more = await services.messages.inboxPage(mailboxId, query.maxResults, next);
    messageIds.push(...(await matching(more.messageIds)));
    scanned += more.messageIds.length;
    next = more.next;
  }
  return { ...page, messageIds: messageIds.slice(0, query.maxResults), approximateCount };
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
