import type Router from '@koa/router';
import { MeshErrorCodes, MeshHeaders } from '../../../../shared/src/protocol/index.ts';
import { MeshError } from '../../domain/errors.ts';
import type { Services } from '../../domain/services.ts';
import type { MailboxState } from '../middleware/mailbox-auth.ts';

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
 * The handshake ("validate mailbox"): clients call it at start and daily; it records when, and
 * what they run (`admin mailbox show`, `admin backlog`: a system silent for days is down). A
 * record that fails (Redis away for a moment) is logged, and the handshake answered all the same.
 */
export function registerHandshakeRoutes(router: Router<MailboxState>, services: Services): void {
  router.all('/', async (ctx) => {
    if (ctx.method !== 'POST' && ctx.method !== 'GET') throw new MeshError(405, MeshErrorCodes.methodNotAllowed);
    const client = Object.fromEntries(CLIENT_DETAILS.map((name) => [name, ctx.get(name)]).filter(([, value]) => value));
    ctx.state.log.info({ mailbox: ctx.state.mailbox.id, client }, 'handshake');
    const details = Object.values(client).join(' ').slice(0, MAX_CLIENT_DETAILS);
    await services.mailboxes
      .recordHandshake(ctx.state.mailbox.id, { at: services.now(), client: details })
      .catch((error: unknown) => ctx.state.log.warn({ err: error }, 'handshake not recorded'));
    ctx.status = 200;
    ctx.body = ctx.state.apiVersion === 2 ? '' : { mailboxId: ctx.state.mailbox.id };
  });
}
