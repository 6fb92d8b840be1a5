import { pipeline, Readable } from 'node:stream';
import type Router from '@koa/router';
import { gunzipWhole } from '../../../../shared/src/gunzip.ts';
import { type ApiVersion, MeshErrorCodes, normaliseMessageId } from '../../../../shared/src/protocol/index.ts';
import { acknowledgeMessage } from '../../domain/acknowledge.ts';
import { describeChunk, downloadChunk } from '../../domain/download.ts';
import { BadRequestError, MeshError, MessageNotFoundError } from '../../domain/errors.ts';
import { countInbox, encodeCursor, listInbox } from '../../domain/inbox.ts';
import type { Services } from '../../domain/services.ts';
import type { MessageRecord } from '../../store/messages.ts';
import type { MailboxState } from '../middleware/mailbox-auth.ts';
import { confirmOnReplicas } from '../middleware/replica-confirmation.ts';
import { streamPayload } from '../stream-payload.ts';
import { messageHeaders } from '../views/message-headers.ts';

const MIN_PAGE = 10;
const MAX_PAGE = 5000;
const DEFAULT_PAGE = 500;

function messageIdParam(value: string | undefined): string {
  const messageId = normaliseMessageId(value ?? '');
  if (!messageId) throw new MessageNotFoundError(value ?? '');
  return messageId;
}

function pageSize(value: unknown): number {
  if (value === undefined) return DEFAULT_PAGE;
  // Decimal digits only: Number() would also read 0x10, 1e1, 10.0 and ' 10'.
  const size = typeof value === 'string' && /^\d{1,9}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(size) || size < MIN_PAGE || size > MAX_PAGE) {
    throw new BadRequestError(MeshErrorCodes.invalidRequest, `max_results must be ${MIN_PAGE} to ${MAX_PAGE}`);
  }
  return size;
}

function singleQueryValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export function registerInboxRoutes(router: Router<MailboxState>, services: Services): void {
  router.get('/inbox', async (ctx) => {
    const mailboxId = ctx.state.mailbox.id;
    const v2 = ctx.state.apiVersion === 2;
    const maxResults = pageSize(singleQueryValue(ctx.query.max_results));
    const continueFrom = singleQueryValue(ctx.query.continue_from);
    const workflowFilter = singleQueryValue(ctx.query.workflow_filter);
    // v1 pages by the last message id seen (MESH's v1 form of continue_from), v2 by an opaque cursor.
    // The id as the inbox holds it (ids are case-insensitive); one that cannot be an id is found nowhere, so the first page.
    const afterMessageId = continueFrom === undefined ? undefined : (normaliseMessageId(continueFrom) ?? continueFrom);
    const page = v2 ? { continueFrom } : { continueFrom: undefined, afterMessageId, fillFilteredPage: true };
    const listing = await listInbox(services, mailboxId, { maxResults, ...page, workflowFilter });
    if (!v2) {
      ctx.body = { messages: listing.messageIds };
      return;
    }
    const self = `/messageexchange/${mailboxId}/inbox`;
    const links: Record<string, string> = { self: ctx.originalUrl };
    if (listing.next !== undefined) {
      const query = new URLSearchParams({ max_results: String(maxResults), continue_from: encodeCursor(listing.next) });
      if (workflowFilter) query.set('workflow_filter', workflowFilter);
      links.next = `${self}?${query.toString()}`;
    }
    ctx.body = { messages: listing.messageIds, links, approx_inbox_count: listing.approximateCount };
  });

  router.get('/count', async (ctx) => {
    const count = await countInbox(services, ctx.state.mailbox.id);
    ctx.body =
      ctx.state.apiVersion === 2
        ? { count }
        : { count, internalID: ctx.state.requestId, allResultsIncluded: true };
  });

  router.get('/inbox/:messageId', async (ctx) => {
    const messageId = messageIdParam(ctx.params.messageId);
    if (ctx.method !== 'HEAD') return sendChunk(ctx, services, messageId, 1);
    await headChunk(ctx, services, messageId, 1);
    // The message's HEAD (as the sandbox answers it), where a GET of chunk 1 of several is 206.
    ctx.status = 200;
  });

  router.get('/inbox/:messageId/:chunk', async (ctx) => {
    const chunkNumber = Number(ctx.params.chunk);
    const messageId = messageIdParam(ctx.params.messageId);
    // As an upload's path must name it (mex-Chunk-Range's number): no leading zero.
    if (!/^[1-9]\d{0,8}$/.test(ctx.params.chunk ?? '')) throw new MessageNotFoundError(messageId);
    await (ctx.method === 'HEAD' ? headChunk : sendChunk)(ctx, services, messageId, chunkNumber);
  });

  router.put('/inbox/:messageId/status/acknowledged', confirmOnReplicas(services.replicas), async (ctx) => {
    const messageId = messageIdParam(ctx.params.messageId);
    await acknowledgeMessage(services, ctx.state.mailbox.id, messageId);
    ctx.status = 200;
    ctx.body = ctx.state.apiVersion === 2 ? '' : { messageId };
  });
}

/**
 * The sender's type for a single-chunk v2 download, as sent: not through Koa's `ctx.type`, which
 * turns `text/plain` into `text/plain; charset=utf-8` (a charset nobody stated) and `csv` into `text/csv`.
 */
function contentTypeOf(message: MessageRecord, version: ApiVersion): string {
  return version === 2 && message.totalChunks === 1 && message.contentType ? message.contentType : 'application/octet-stream';
}

type ChunkContext = Parameters<Parameters<Router<MailboxState>['get']>[1]>[0];

/**
 * A HEAD: the headers and status a download of the chunk would have, from the record alone.
 * Nothing is downloaded, so nothing is audited and object storage is not asked.
 */
async function headChunk(ctx: ChunkContext, services: Services, messageId: string, chunkNumber: number): Promise<void> {
  const { message, size } = await describeChunk(services, ctx.state.mailbox.id, messageId, chunkNumber);
  setChunkHeaders(ctx, message, chunkNumber);
  // Decompressed on the way, its length is known only as it goes.
  if (decompressesFor(ctx, message)) return;
  if (message.contentEncoding === 'gzip') ctx.set('Content-Encoding', 'gzip');
  ctx.length = size ?? 0;
}

/** Where a chunk stored gzip-encoded is decompressed for a client that does not take gzip. */
function decompressesFor(ctx: ChunkContext, message: MessageRecord): boolean {
  return message.contentEncoding === 'gzip' && !ctx.acceptsEncodings('gzip', 'identity')?.toString().startsWith('gzip');
}

function setChunkHeaders(ctx: ChunkContext, message: MessageRecord, chunkNumber: number): void {
  ctx.set(messageHeaders(message, chunkNumber));
  ctx.status = chunkNumber < message.totalChunks ? 206 : 200;
  ctx.set('Content-Type', contentTypeOf(message, ctx.state.apiVersion));
}

/** Streams chunk n: 206 while more follow, 200 for the last. Gzip goes out as stored when the client takes it. */
async function sendChunk(ctx: ChunkContext, services: Services, messageId: string, chunkNumber: number): Promise<void> {
  // A recipient that leaves before its chunk comes need not hold a storage read, and its transfer slot, until the read gives up.
  const left = new AbortController();
  ctx.res.once('close', () => {
    if (!ctx.res.writableFinished) left.abort();
  });
  const { message, chunk } = await downloadChunk(services, ctx.state.mailbox.id, messageId, chunkNumber, left.signal);
  setChunkHeaders(ctx, message, chunkNumber);
  if (!chunk) {
    ctx.body = '';
    return;
  }
  if (decompressesFor(ctx, message)) {
    // pipeline, not pipe: a storage read error must end the decompression, and so the response.
    const source = Buffer.isBuffer(chunk.body) ? Readable.from([chunk.body]) : chunk.body;
    const gunzip = gunzipWhole();
    pipeline(source, gunzip, () => {});
    await decompressionStarted(gunzip, messageId);
    // Not through Koa, whose pipeline puts seven 'close' listeners on the response: with the
    // request's own, past Node's ten, each such download logged a warning of a listener leak.
    ctx.respond = false;
    streamPayload(gunzip, ctx.res);
    return;
  }
  if (message.contentEncoding === 'gzip') ctx.set('Content-Encoding', 'gzip');
  ctx.length = chunk.size;
  if (Buffer.isBuffer(chunk.body)) {
    // A payload at hand goes out in one write.
    ctx.body = chunk.body;
    return;
  }
  ctx.respond = false;
  streamPayload(chunk.body, ctx.res);
}

/**
 * Waits for the first decompressed bytes, so that content corrupt from its start (checked to
 * begin as gzip when sent, it can still be) is answered with an error instead of a response
 * cut off before its status line. Corruption found further on can only cut the response off.
 * Object storage failing meanwhile is answered as it is elsewhere (503), not as corrupt content.
 */
async function decompressionStarted(gunzip: Readable, messageId: string): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      gunzip.once('readable', resolve);
      gunzip.once('end', resolve);
      gunzip.once('error', reject);
    });
  } catch (error) {
    // zlib's own errors have its codes (Z_DATA_ERROR, Z_BUF_ERROR); the pipeline passes a storage read's on as it is.
    if (!(error as NodeJS.ErrnoException).code?.startsWith('Z_')) throw error;
    throw new MeshError(500, MeshErrorCodes.internalError, {
      messageId,
      detail: 'the stored gzip content cannot be decompressed; it may still be fetched as sent, with Accept-Encoding: gzip',
      // Its sender's content: the recipient's every download would log an error otherwise.
      clientCaused: true,
    });
  }
}
