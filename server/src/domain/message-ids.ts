import type { IdReservation } from '../store/messages.ts';
import type { Services } from './services.ts';

/**
 * A fresh message id, reserved before anything is stored under it, with its first lifecycle
 * check scheduled at `firstCheckAt` so no crash can leave a message without one. Ids carry
 * 44 random bits per second; at Spine's peak a clash is rare but not impossible, and it would
 * overwrite another message's payload, so each id is claimed first. The claim and the schedule
 * go together (one round trip): scheduling leaves an existing entry alone, so a clash harms nobody.
 * `firstChoice`, an id picked beforehand, is tried first.
 */
export async function reserveMessageId(services: Services, firstCheckAt: Date, firstChoice?: string): Promise<{ readonly messageId: string; readonly reservation: IdReservation }> {
  for (let choice = firstChoice; ; choice = undefined) {
    const messageId = choice ?? services.newMessageId(services.now());
    const [reservation] = await Promise.all([services.messages.reserveId(messageId), services.lifecycle.start(messageId, firstCheckAt)]);
    if (reservation) return { messageId, reservation };
  }
}
