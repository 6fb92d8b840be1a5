import type { IncomingMessage } from 'node:http';
import type Router from '@koa/router';
import type { Logger } from 'pino';
import { MeshErrorCodes, MeshHeaders, normaliseMessageId } from '../../../../shared/src/protocol/index.ts';
import { BadRequestError, MessageNotFoundError, SendRejectedError } from '../../domain/errors.ts';
import type { UnfinishedStep } from '../../domain/follow-up-steps.ts';
import { resentMessage, sendMessage } from '../../domain/send.ts';
import type { Services } from '../../domain/services.ts';
import { trackByLocalId, trackMessage } from '../../domain/track.ts';
import { uploadChunk } from '../../domain/upload-chunk.ts';
import type { Mailbox } from '../../store/mailboxes.ts';
import type { MailboxState } from '../middleware/mailbox-auth.ts';
import { confirmOnReplicas } from '../middleware/replica-confirmation.ts';
import type { PendingWork } from '../pending-work.ts';
import { chunkBody, chunkRange, sendMetadata } from '../send-headers.ts';
import { trackingBody } from '../views/tracking.ts';

export function registerOutboxRoutes(router: Router<MailboxState>, services: Services, pendingWork: PendingWork): void {
  // After the authentication: a send whose writes are left unconfirmed keeps its token, so that its retry is told its message.
  const confirmed = confirmOnReplicas(services.replicas);
  router.post('/outbox', confirmed, async (ctx) => {
    const { firstTryCreates, mailbox, log } = ctx.state;
    let messageId: string;
    if (firstTryCreates) {
      messageId = await resentMessage(services, mailbox.id, firstTryCreates, chunkBody(ctx.req.headers, ctx.req));
      log.info({ messageId }, 'a send retried with its token: answered with the message its first try sent');
    } else {
      messageId = await send(mailbox, ctx.req, ctx.state.newMessageId, log);
      ctx.state.recorded = true;
    }
    ctx.status = 202;
    ctx.body = ctx.state.apiVersion === 2 ? { message_id: messageId } : { messageID: messageId };
  });

  async function send(sender: Mailbox, request: IncomingMessage, pickedId: string | undefined, log: Logger): Promise<string> {
    const { chunk: _chunk, ...metadata } = sendMetadata(request.headers);
    const body = chunkBody(request.headers, request);
    const { messageId, followUp } = await sendMessage(services, { sender, metadata, body, ...(pickedId ? { messageId: pickedId } : {}) });
    pendingWork
      .track(followUp, 'follow-up')
      .then((unfinished) => logUnfinished(log, messageId, unfinished))
      .catch((error: unknown) => log.error({ err: error, messageId }, 'the steps after a recorded send failed unexpectedly: its first lifecycle check makes up for them'));
    return messageId;
  }

  router.post('/outbox/:messageId/:chunk', confirmed, async (ctx) => {
    const messageId = normaliseMessageId(ctx.params.messageId ?? '');
    if (!messageId) throw new MessageNotFoundError(ctx.params.messageId ?? '');
    const range = chunkRange(ctx.req.headers, messageId);
    if (String(range.chunk) !== ctx.params.chunk) {
      // Without the header, the range is 1:1 (a send's default), which this client did not say.
      const given = ctx.get(MeshHeaders.chunkRange);
      throw new SendRejectedError(MeshErrorCodes.invalidHeaderChunks, { messageId, detail: given === '' ? `no ${MeshHeaders.chunkRange} for chunk ${ctx.params.chunk}` : given });
    }
    ctx.state.chunkUpload = { messageId, chunkNumber: range.chunk };
    const unfinished = await uploadChunk(services, {
      sender: ctx.state.mailbox.id,
      messageId,
      chunkNumber: range.chunk,
      totalChunks: range.total,
      body: chunkBody(ctx.req.headers, ctx.req, messageId),
      repeated: ctx.state.repeatedRequest,
      copyId: ctx.state.chunkCopyId,
    });
    ctx.state.recorded = true;
    logUnfinished(ctx.state.log, messageId, unfinished);
    ctx.status = 202;
    // v2: MESH's specification answers a chunk with its message's id, as a send.
    ctx.body = ctx.state.apiVersion === 2 ? { message_id: messageId } : { messageID: messageId, blockID: range.chunk };
  });

  router.get('/outbox/tracking', async (ctx) => {
    const requested = ctx.query.messageID ?? ctx.query.message_id;
    if (typeof requested !== 'string' || requested === '') {
      throw new BadRequestError(MeshErrorCodes.invalidRequest, 'messageID query parameter is required');
    }
    const messageId = normaliseMessageId(requested);
    if (!messageId) throw new MessageNotFoundError(requested);
    ctx.body = trackingBody(await trackMessage(services, ctx.state.mailbox.id, messageId), ctx.state.apiVersion);
  });

  router.get('/outbox/tracking/:localId', async (ctx) => {
    const tracked = await trackByLocalId(services, ctx.state.mailbox.id, ctx.params.localId ?? '');
    // MESH has only a v1 form of this (deprecated) answer: given whatever the Accept, and typed as
    // v1 (application/json), as the specification and the sandbox type it. Refusals follow the Accept.
    ctx.state.apiVersion = 1;
    ctx.body = trackingBody(tracked, 1);
  });
}

function logUnfinished(log: Logger, messageId: string, unfinished: readonly UnfinishedStep[]): void {
  for (const { step, error } of unfinished) {
    const consequence = {
      delivery: 'its first lifecycle check delivers it',
      index: 'its first lifecycle check makes it findable by its local id',
      audit: 'its audit entry is missing',
      cleanup: "a chunk's replaced copy stays until the message's payload is purged",
      schedule: 'its next lifecycle check may come sooner than needed (and moves it on), or, to a recipient deactivated meanwhile, later: returned at its expiry',
    }[step];
    log.warn({ err: error, messageId, step }, `message recorded, but its ${step} failed: ${consequence}`);
  }
}
