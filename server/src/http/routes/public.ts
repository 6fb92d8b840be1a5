import type { TLSSocket } from 'node:tls';
import type Router from '@koa/router';
import { MeshErrorCodes } from '../../../../shared/src/protocol/index.ts';
import { MeshError } from '../../domain/errors.ts';
import { lookupEndpoint, searchWorkflow } from '../../domain/lookup.ts';
import type { Services } from '../../domain/services.ts';
import { jsonMediaType, type RequestState } from '../middleware/request-context.ts';
import { clientOf, peerCertificate } from '../peer-certificate.ts';
import { endpointLookupBody, workflowSearchBody } from '../views/lookup.ts';

/** Endpoints that need no mailbox token (the TLS client certificate is still required). */
export function registerPublicRoutes(router: Router<RequestState>, services: Services): void {
  const [ping, endpointLookup, workflowSearch] = ['/_ping', '/endpointlookup/:odsCode/:workflowId', '/workflowsearch/:workflowId'];
  router.get(ping, (ctx) => {
    // idempotent_sends: a send repeated with its token is told the first try's message (see
    // mailbox-auth), so a client that knows may repeat a send whose answer it lost.
    ctx.body = { status: 'ok', service: 'meshbox', idempotent_sends: true, timestamp: new Date().toISOString() };
  });

  const asker = (ctx: { readonly req: { readonly socket: unknown } }): string => clientOf(peerCertificate(ctx.req.socket as TLSSocket));

  router.get(endpointLookup, async (ctx) => {
    const mailboxes = await lookupEndpoint(services, asker(ctx), ctx.params.odsCode ?? '', ctx.params.workflowId ?? '');
    ctx.type = jsonMediaType(ctx.state.apiVersion);
    ctx.body = endpointLookupBody(mailboxes, ctx.state.apiVersion);
  });

  router.get(workflowSearch, async (ctx) => {
    const mailboxes = await searchWorkflow(services, asker(ctx), ctx.params.workflowId ?? '');
    ctx.type = jsonMediaType(ctx.state.apiVersion);
    ctx.body = workflowSearchBody(mailboxes);
  });

  // Any other method is refused here: past this router, the mailbox router would take the
  // path's first segment (`_ping`) for a mailbox id and answer 403 for the certificate.
  for (const path of [ping, endpointLookup, workflowSearch]) {
    router.all(path, (ctx) => {
      ctx.set('Allow', 'GET, HEAD');
      throw new MeshError(405, MeshErrorCodes.methodNotAllowed);
    });
  }
}
