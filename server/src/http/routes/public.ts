import type Router from '@koa/router';
import { lookupEndpoint, searchWorkflow } from '../../domain/lookup.ts';
import type { Services } from '../../domain/services.ts';
import type { RequestState } from '../middleware/request-context.ts';
import { endpointLookupBody, workflowSearchBody } from '../views/lookup.ts';

/** Endpoints that need no mailbox token (the TLS client certificate is still required). */
export function registerPublicRoutes(router: Router<RequestState>, services: Services): void {
  router.get('/_ping', (ctx) => {
    ctx.body = { status: 'ok', service: 'meshbox', timestamp: new Date().toISOString() };
  });

  router.get('/endpointlookup/:odsCode/:workflowId', async (ctx) => {
    const mailboxes = await lookupEndpoint(services, ctx.params.odsCode ?? '', ctx.params.workflowId ?? '');
    ctx.body = endpointLookupBody(mailboxes, ctx.state.apiVersion);
  });

  router.get('/workflowsearch/:workflowId', async (ctx) => {
    ctx.body = workflowSearchBody(await searchWorkflow(services, ctx.params.workflowId ?? ''));
  });
}
