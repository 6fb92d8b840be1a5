import type Router from '@koa/router';
import { MeshErrorCodes, MeshHeaders } from '../../../../shared/src/protocol/index.ts';
import { MeshError } from '../../domain/errors.ts';
import type { MailboxState } from '../middleware/mailbox-auth.ts';

const CLIENT_DETAILS = [
  MeshHeaders.clientVersion,
  MeshHeaders.osName,
  MeshHeaders.osVersion,
  MeshHeaders.osArchitecture,
  MeshHeaders.javaVersion,
] as const;

/** The handshake ("validate mailbox"): clients call it at start and daily; it records what they run. */
export function registerHandshakeRoutes(router: Router<MailboxState>): void {
  router.all('/', (ctx) => {
    if (ctx.method !== 'POST' && ctx.method !== 'GET') throw new MeshError(405, MeshErrorCodes.methodNotAllowed);
    const client = Object.fromEntries(CLIENT_DETAILS.map((name) => [name, ctx.get(name)]).filter(([, value]) => value));
    ctx.state.log.info({ mailbox: ctx.state.mailbox.id, client }, 'handshake');
    ctx.status = 200;
    ctx.body = ctx.state.apiVersion === 2 ? '' : { mailboxId: ctx.state.mailbox.id };
  });
}
