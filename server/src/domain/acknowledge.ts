import { refuseAsGone } from './download.ts';
import { MessageNotFoundError } from './errors.ts';
import type { Services } from './services.ts';

/** The recipient confirms receipt: the message leaves its inbox for good. */
export async function acknowledgeMessage(services: Services, mailboxId: string, messageId: string): Promise<void> {
  const outcome = await services.messages.acknowledge(messageId, mailboxId, services.now());
  if (outcome === 'not_found') throw new MessageNotFoundError(messageId);
  if (outcome === 'gone' || outcome === 'uploading') await refuseAsGone(services, mailboxId, messageId, outcome === 'uploading');
  await Promise.all([
    services.messages.leaveInbox(messageId, mailboxId),
    services.audit.record({ action: 'acknowledge', actor: mailboxId, messageId }),
    // The payload is kept for the retention period after acknowledgement, then purged.
    services.lifecycle.schedule(messageId, new Date(services.now().getTime() + services.periods.payloadRetentionMs)),
  ]);
}
