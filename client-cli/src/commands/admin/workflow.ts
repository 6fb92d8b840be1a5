import type { Command } from 'commander';
import { ANY_WORKFLOW, type WorkflowDirection } from '../../../../server/src/store/mailboxes.ts';
import { parseWorkflowId } from '../../../../shared/src/protocol/index.ts';
import { withAdminStores } from './admin-context.ts';

interface DirectionOptions {
  readonly send?: boolean;
  readonly receive?: boolean;
}

function directions(options: DirectionOptions): WorkflowDirection[] {
  if (options.send === options.receive) return ['send', 'receive'];
  return options.send ? ['send'] : ['receive'];
}

/** `admin workflow allow|deny <mailbox> <workflow> [--send|--receive]`: which workflows a mailbox may use. */
export function registerWorkflowCommands(admin: Command): void {
  const workflow = admin.command('workflow').description("which workflows a mailbox may send and receive ('*' = any)");
  for (const [name, allowed] of [['allow', true], ['deny', false]] as const) {
    workflow
      .command(`${name} <mailbox> <workflow>`)
      .description(`${allowed ? 'allow' : 'deny'} a workflow for sending and receiving (or only one, with --send / --receive)`)
      .option('--send', 'only for sending')
      .option('--receive', 'only for receiving')
      .action(async (mailbox: string, workflowId: string, options: DirectionOptions) => {
        const mailboxId = mailbox.toUpperCase();
        // One already allowed, however odd, may still be denied.
        if (allowed) parseWorkflowId(workflowId);
        for (const direction of directions(options)) {
          const anyWorkflow = await withAdminStores(async ({ mailboxes, audit }) => {
            const outcome = await mailboxes.setWorkflow(mailboxId, workflowId, direction, allowed);
            if (outcome === 'not_found') throw new Error(`no mailbox ${mailboxId}`);
            if (outcome === 'wildcard') {
              throw new Error(`${mailboxId} may ${direction} any workflow ('*'): deny '*' first, then allow the ones it may use`);
            }
            await audit(`workflow.${name}`, mailboxId, `${direction} ${workflowId}`);
            const changed = await mailboxes.get(mailboxId, { fresh: true });
            return (direction === 'send' ? changed?.sendWorkflows : changed?.receiveWorkflows)?.includes(ANY_WORKFLOW) ?? false;
          });
          console.log(`${mailboxId} may ${allowed ? '' : 'no longer '}${direction} ${workflowId}`);
          // A new mailbox may use any workflow: allowing one narrows nothing until '*' goes.
          if (allowed && anyWorkflow && workflowId !== ANY_WORKFLOW) {
            console.error(`note: ${mailboxId} may still ${direction} any workflow ('*'); to allow only the ones named, deny '*': meshbox admin workflow deny ${mailboxId} '*' --${direction}`);
          }
        }
      });
  }
}
