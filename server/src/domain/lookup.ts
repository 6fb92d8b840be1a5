import { MeshErrorCodes } from '../../../shared/src/protocol/index.ts';
import type { MailboxProfile } from '../store/mailboxes.ts';
import { BadRequestError } from './errors.ts';
import { countRequestCost } from './request-cost.ts';
import type { Services } from './services.ts';

function required(value: string, name: string): string {
  const trimmed = value.trim();
  if (trimmed === '') throw new BadRequestError(MeshErrorCodes.invalidRequest, `${name} missing`);
  return trimmed;
}

/** A lookup counts as one request more for each this many receivers in its answer. */
const RECEIVERS_PER_REQUEST = 1_000;

/**
 * Lookups need no mailbox token, so the per-mailbox rate limit counts them against the
 * certificate asking (`asker`: its name upper-cased, so that a mailbox's certificate shares its
 * mailbox's count, or its serial number when it has no single name), and by the size
 * of their answer: a national workflow's is megabytes, and a client asking for it in a loop is
 * slowed by what it costs. The answer is counted once read (it is read once for all askers).
 */
async function counted(services: Services, asker: string, receivers: readonly MailboxProfile[]): Promise<readonly MailboxProfile[]> {
  await countRequestCost(services, asker, 1 + Math.floor(receivers.length / RECEIVERS_PER_REQUEST));
  return receivers;
}

/** The active mailboxes of an organisation (ODS code) registered to receive a workflow. */
export async function lookupEndpoint(services: Services, asker: string, odsCode: string, workflowId: string): Promise<readonly MailboxProfile[]> {
  return counted(services, asker, await services.mailboxes.receiversOf(required(workflowId, 'workflow id'), required(odsCode, 'ods code')));
}

/** Every active mailbox registered to receive a workflow. */
export async function searchWorkflow(services: Services, asker: string, workflowId: string): Promise<readonly MailboxProfile[]> {
  return counted(services, asker, await services.mailboxes.receiversOf(required(workflowId, 'workflow id')));
}
