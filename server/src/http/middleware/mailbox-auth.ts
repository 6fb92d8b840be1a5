import type { TLSSocket } from 'node:tls';
import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import { MESH_PATH_PREFIX } from '../../../../shared/src/protocol/index.ts';
import { authenticateMailbox } from '../../domain/authenticate.ts';
import { sendRecorded } from '../../domain/send.ts';
import { chunkCopyRecorded, newChunkCopyId } from '../../domain/upload-chunk.ts';
import type { Services } from '../../domain/services.ts';
import type { Mailbox } from '../../store/mailboxes.ts';
import type { PendingWork } from '../pending-work.ts';
import { failureReason, quietRepeats } from '../../quiet-repeats.ts';
import { peerCertificate } from '../peer-certificate.ts';
import { sendIdentity } from '../send-headers.ts';
import type { RequestState } from './request-context.ts';

export interface MailboxState extends RequestState {
  mailbox: Mailbox;
  /** The request repeats one served before with the same token (a client's retry after a lost answer). */
  repeatedRequest: boolean;
  /** A send: the id picked for its message, kept with the token's claim. */
  newMessageId: string | undefined;
  /** A repeated send: the id of the message its first try was to create, which the retry is told of. */
  firstTryCreates: string | undefined;
  /** A chunk upload: the id of its copy of the chunk (ChunkUpload.copyId), its first try's on a repeat. */
  chunkCopyId: string | undefined;
  /** A chunk upload: which chunk of which message, once the route has read them. */
  chunkUpload?: { readonly messageId: string; readonly chunkNumber: number };
  /** Set once the request has recorded what it brought (a send's message, a chunk): unless the request then fails, its token stays used, whatever became of the answer. */
  recorded?: boolean;
}

/** `.../{mailbox}/outbox`: a send (chunk 1 of a new message), in any letter case, as the router matches it; not the handshake of a mailbox named OUTBOX. */
const SEND_PATH = new RegExp(`^${MESH_PATH_PREFIX}/[^/]+/outbox/?$`, 'i');
/** `.../{mailbox}/outbox/{id}/{n}`: a chunk upload. */
const CHUNK_PATH = new RegExp(`^${MESH_PATH_PREFIX}/[^/]+/outbox/[^/]+/[^/]+/?$`, 'i');

const RELEASE_FAILURE_LOG_INTERVAL_MS = 10_000;

/** Statuses after which a client (mesh-client among them) retries with the identical token. */
const RETRYABLE_STATUSES = new Set([425, 429, 500, 502, 503, 504]);

/**
 * Authenticates the path mailbox (certificate + NHSMESH token). The token is claimed for
 * this request, and given back when the request was not served — a retryable status, or a
 * connection that closed before the response was complete — so the client's retry works. A
 * retry whose answer was lost after it was sent whole finds the token used, by this request:
 * one that is harmless to repeat is served again (authenticateMailbox). A send is not: the
 * claim names the message it is to create, and its identical retry is told that message
 * (resentMessage). So a send's token is used by its message: kept once the message is
 * recorded, even if the client went before the answer, and given back by a send that failed
 * before recording it (whatever its answer), which may then be tried again.
 */
export function mailboxAuth(services: Services, pendingWork: PendingWork, logger: Logger): Middleware<MailboxState> {
  // Redis away fails every release alike: a line per reason an interval, as errorResponder logs the requests.
  const quiet = quietRepeats(RELEASE_FAILURE_LOG_INTERVAL_MS);
  return async (ctx, next) => {
    const sending = ctx.method === 'POST' && SEND_PATH.test(ctx.path);
    // What a request brings is part of it: the same token with other content is another request.
    const uploading = ctx.method === 'POST' && CHUNK_PATH.test(ctx.path);
    const bringsContent = sending || uploading;
    const newMessageId = sending ? services.newMessageId(services.now()) : undefined;
    const newCopyId = uploading ? newChunkCopyId() : undefined;
    const creates = newMessageId ?? newCopyId;
    // With its query: another page or message tracked is another request.
    const target = `${ctx.method} ${ctx.originalUrl}`;
    const { mailbox, token, repeated, firstTryCreates } = await authenticateMailbox(services, {
      certificateCommonName: peerCertificate(ctx.req.socket as TLSSocket).commonName,
      mailboxId: String(ctx.params.mailbox ?? ''),
      authorization: ctx.get('Authorization') || undefined,
      request: bringsContent ? `${target}\n${sendIdentity(ctx.req.headers)}` : target,
      // Sending creates a message: done twice, it would be delivered twice.
      repeatable: !sending,
      ...(creates ? { creates } : {}),
    });
    ctx.state.mailbox = mailbox;
    ctx.state.repeatedRequest = repeated;
    ctx.state.newMessageId = newMessageId;
    ctx.state.firstTryCreates = sending ? firstTryCreates : undefined;
    // A claim made before uploads named their copies names none: the repeat's copy is then its own.
    ctx.state.chunkCopyId = uploading ? (firstTryCreates ?? newCopyId) : undefined;
    // A repeat claimed nothing, so it has nothing to give back.
    if (repeated) return next();
    // The client may already have gone while we were authenticating: then 'close' has fired.
    const responseClosed = ctx.res.closed ? Promise.resolve() : new Promise((resolve) => ctx.res.once('close', resolve));
    // Decided once the request is handled and its connection is done with it: the client may go
    // while a send is still being stored, and the message is then sent all the same.
    let failed = false;
    const giveBackUnlessServed = async (): Promise<void> => {
      await responseClosed;
      // Recorded and failed after (its writes not confirmed on Redis's replicas): a failover may
      // have lost the record, so whether it stands is read again, of a primary, as for a send that failed. (Not
      // told by the status: with the client gone, the error's is not set yet.)
      if (ctx.state.recorded && !failed) return;
      // A send that failed may have failed after its message was recorded (a step after it, an
      // answer from Redis lost): then its retry must be told that message, not send it again.
      // An upload's retry is answered 202 as its first try was (uploadChunk) once the message is
      // accepted: so only an upload that stored its chunk keeps its token, one that failed after
      // its copy was recorded included (refused 423 as a new upload, the retry of a final chunk
      // would be told the message it completed was refused); one refused gives it back, and its
      // retry is judged anew.
      const { chunkUpload, chunkCopyId } = ctx.state;
      const served =
        newMessageId !== undefined
          ? await sendRecorded(services, mailbox.id, newMessageId)
          : uploading
            ? (ctx.res.writableFinished && ctx.status < 300) ||
              (chunkUpload !== undefined && chunkCopyId !== undefined && (await chunkCopyRecorded(services, { ...chunkUpload, copyId: chunkCopyId })))
            : ctx.res.writableFinished && !RETRYABLE_STATUSES.has(ctx.status);
      if (!served) await services.usedTokens.release(token);
    };
    try {
      await next();
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      pendingWork.track(giveBackUnlessServed()).catch((error: unknown) => {
        const reason = failureReason(error);
        quiet(
          reason,
          () => ctx.state.log.warn({ err: error }, 'could not release authorization token'),
          (repeats) => logger.warn({ reason, repeats, seconds: RELEASE_FAILURE_LOG_INTERVAL_MS / 1000 }, `could not release ${repeats} more authorization tokens for this reason`),
        );
      });
    }
  };
}
