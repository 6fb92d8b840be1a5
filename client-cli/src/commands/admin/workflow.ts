import type { Command } from 'commander';
import { ANY_WORKFLOW, type Mailbox, type WorkflowDirection } from '../../../../server/src/store/mailboxes.ts';
import { printableLine } from '../../client/untrusted-text.ts';
import { parseMailboxId, parseWorkflowId } from '../../../../shared/src/protocol/index.ts';
import { withAdminStores } from './admin-context.ts';

interface DirectionOptions {
  readonly send?: boolean;
  readonly receive?: boolean;
}

function workflowsOf(mailbox: Mailbox, direction: WorkflowDirection): readonly string[] {
  return direction === 'send' ? mailbox.sendWorkflows : mailbox.receiveWorkflows;
}

/** One workflow denied to a mailbox that may use any: '*' must go first. */
function wildcardRefusal(mailboxId: string, direction: WorkflowDirection): Error {
  return new Error(`${mailboxId} may ${direction} any workflow ('*'): deny '*' first, then allow the ones it may use`);
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
        const mailboxId = parseMailboxId(mailbox);
        // One already allowed, however odd, may still be denied (one not allowed is refused below).
        if (allowed) parseWorkflowId(workflowId);
        const chosen = directions(options);
        await withAdminStores(async ({ mailboxes, audit }) => {
          const current = await mailboxes.get(mailboxId, { fresh: true });
          if (!current) throw new Error(`no mailbox ${mailboxId}`);
          // Both directions checked before either is changed: a refusal of the second left the first changed.
          const wildcard = allowed || workflowId === ANY_WORKFLOW ? undefined : chosen.find((direction) => workflowsOf(current, direction).includes(ANY_WORKFLOW));
          if (wildcard) throw wildcardRefusal(mailboxId, wildcard);
          for (const direction of chosen) {
            const outcome = await mailboxes.setWorkflow(mailboxId, workflowId, direction, allowed);
            if (outcome === 'not_found') throw new Error(`no mailbox ${mailboxId}`);
            if (outcome === 'wildcard') throw wildcardRefusal(mailboxId, direction);
            if (outcome === 'absent' || outcome === 'present') {
              const already = outcome === 'absent' ? `may not ${direction} ${workflowId} anyway` : `may already ${direction} ${workflowId}`;
              console.log(printableLine(`${mailboxId} ${already}: nothing changed`));
              continue;
            }
            await audit(`workflow.${name}`, mailboxId, `${direction} ${workflowId}`);
            console.log(`${mailboxId} may ${allowed ? '' : 'no longer '}${direction} ${workflowId}`);
            // A new mailbox may use any workflow: allowing one narrows nothing until '*' goes.
            if (allowed && workflowId !== ANY_WORKFLOW && workflowsOf(current, direction).includes(ANY_WORKFLOW)) {
              console.error(`note: ${mailboxId} may still ${direction} any workflow ('*'); to allow only the ones named, deny '*': meshbox admin workflow deny ${mailboxId} '*' --${direction}`);
            }
          }
        });
      });
  }
}
