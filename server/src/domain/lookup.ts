import { MeshErrorCodes } from '../../../shared/src/protocol/index.ts';
import type { MailboxProfile } from '../store/mailboxes.ts';
import { BadRequestError } from './errors.ts';
import type { Services } from './services.ts';

function required(value: string, name: string): string {
  const trimmed = value.trim();
  if (trimmed === '') throw new BadRequestError(MeshErrorCodes.invalidRequest, `${name} missing`);
  return trimmed;
}

/** The active mailboxes of an organisation (ODS code) registered to receive a workflow. */
export async function lookupEndpoint(services: Services, odsCode: string, workflowId: string): Promise<readonly MailboxProfile[]> {
  return services.mailboxes.receiversOf(required(workflowId, 'workflow id'), required(odsCode, 'ods code'));
}

/** Every active mailbox registered to receive a workflow. */
export async function searchWorkflow(services: Services, workflowId: string): Promise<readonly MailboxProfile[]> {
  return services.mailboxes.receiversOf(required(workflowId, 'workflow id'));
}
