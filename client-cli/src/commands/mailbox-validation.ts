import { DAY_MS, daysLeft, EXPIRY_WARNING_DAYS, expiryPhrase } from '../../../shared/src/pki/validity.ts';
import type { MeshClient } from '../client/mesh-client.ts';

/** The warning for a client certificate near its end (undefined when it is not, or is unknown). */
export function certificateExpiryWarning(notAfter: Date | undefined, now: Date): string | undefined {
  if (!notAfter) return undefined;
  const left = daysLeft(notAfter, now);
  if (left > EXPIRY_WARNING_DAYS) return undefined;
  return `meshbox: warning: the certificate ${expiryPhrase(left)}: ask your MESH administrator for a new one now (meshbox cert request makes the request)`;
}

/**
 * MESH asks a client to validate its mailbox (the handshake) when it starts and daily: a watch
 * that runs for months does so before its first pass and then once a day, and warns (`warn`)
 * when its certificate nears its end, as the server will refuse it then. A handshake that fails
 * is the pass's failure, and tried again before the next.
 */
export function dailyHandshake(
  client: Pick<MeshClient, 'handshake' | 'certificateNotAfter'>,
  warn: (line: string) => void,
  now: () => Date = () => new Date(),
): () => Promise<void> {
  let last: number | undefined;
  return async () => {
    // The wall clock, which goes on through a laptop's sleep; one set back (elapsed < 0) makes it due.
    const elapsed = last === undefined ? undefined : now().getTime() - last;
    if (elapsed !== undefined && elapsed >= 0 && elapsed < DAY_MS) return;
    try {
      await client.handshake();
    } catch (error) {
      // Said as what failed: the pass's failure message would otherwise seem to be about the inbox or folder.
      throw new Error(`the mailbox validation (MESH handshake) failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    last = now().getTime();
    const warning = certificateExpiryWarning(client.certificateNotAfter, now());
    if (warning) warn(warning);
  };
}
