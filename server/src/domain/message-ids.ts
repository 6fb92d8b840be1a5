import { newMessageId } from '../../../shared/src/protocol/index.ts';
import type { Services } from './services.ts';

/**
 * A fresh message id, reserved before anything is stored under it. Ids carry 44 random bits
 * per second; at Spine's peak a clash is rare but not impossible, and it would overwrite
 * another message's payload, so each id is claimed first.
 */
export async function reserveUniqueMessageId(services: Services): Promise<string> {
  for (;;) {
    const messageId = newMessageId(services.now());
    if (await services.messages.reserveId(messageId)) return messageId;
  }
}
