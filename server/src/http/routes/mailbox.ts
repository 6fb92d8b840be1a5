import type Router from '@koa/router';
import { MeshHeaders } from '../../../../shared/src/protocol/index.ts';
import type { Services } from '../../domain/services.ts';
import { within } from '../../time-limit.ts';
import type { MailboxState } from '../middleware/mailbox-auth.ts';
import { loggedText } from '../../logging.ts';

const CLIENT_DETAILS = [
  MeshHeaders.clientVersion,
  MeshHeaders.osName,
  MeshHeaders.osVersion,
  MeshHeaders.osArchitecture,
  MeshHeaders.javaVersion,
] as const;

/** Client details kept with the mailbox: enough for a version and an OS, not a place for a client to store text. */
const MAX_CLIENT_DETAILS = 200;
/**
 * Control characters a header can carry (tab, and obs-text 0x80-0x9F, which Node reads as
 * Latin-1 C1 controls such as U+009B, CSI): kept as '?', as the details reach an admin's terminal.
 */
// eslint-disable-next-line no-control-regex -- the control characters are what this finds
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/g;
/** How long the answer waits for the record at most: a Redis that has stalled must not hold the handshake. */
const RECORD_WAIT_MS = 1_000;

/**
 * The handshake ("validate mailbox"): clients call it at start and daily; it records when, and
 * what they run (`admin mailbox show`, `admin backlog`: a system silent for days is down). A
 * record that fails (Redis away for a moment) is logged, and the handshake answered all the same;
 * one that takes longer than RECORD_WAIT_MS is left to finish after the answer.
 */
export function registerHandshakeRoutes(router: Router<MailboxState>, services: Services): void {
  router.register('/', ['GET', 'POST'], async (ctx) => {
    const client = Object.fromEntries(CLIENT_DETAILS.map((name) => [name, loggedText(ctx.get(name))]).filter(([, value]) => value));
    ctx.state.log.info({ mailbox: ctx.state.mailbox.id, client }, 'handshake');
    const details = Object.values(client).join(' ').replace(CONTROL_CHARACTERS, '?').slice(0, MAX_CLIENT_DETAILS);
    const recorded = services.mailboxes
      .recordHandshake(ctx.state.mailbox.id, { at: services.now(), client: details })
      .catch((error: unknown) => ctx.state.log.warn({ err: error }, 'handshake not recorded'));
    // Past the wait the record goes on by itself (its failure is logged above).
    await within(recorded, RECORD_WAIT_MS).catch(() => undefined);
    ctx.status = 200;
    ctx.body = ctx.state.apiVersion === 2 ? '' : { mailboxId: ctx.state.mailbox.id };
  });
}

/**
 * `POST /{mailbox}/update`: a route MESH's sandbox answers 200 with nothing, for an authenticated
 * mailbox, and hides from its API description (a client's check in, as the Java MESH client may
 * make): answered the same, so such a client does not log a 404 on every check.
 */
export function registerUpdateRoute(router: Router<MailboxState>): void {
  router.post('/update', (ctx) => {
    ctx.status = 200;
    ctx.body = '';
  });
}
