import { resolve } from 'node:path';
import type { Command } from 'commander';
import { DEV_CERTS_DIR } from '../../../../shared/src/dev-paths.ts';
import { registerAuditCommands } from './audit.ts';
import { registerBacklogCommand } from './backlog.ts';
import { registerCaCommands } from './ca.ts';
import { registerCertCommands } from './cert.ts';
import { registerMailboxCommands } from './mailbox.ts';
import { registerQueueCommands } from './queues.ts';
import { registerWorkflowCommands } from './workflow.ts';

/**
 * `meshbox admin ...`: operator commands. They act on the deployment's Redis directly
 * (MESHBOX_REDIS_URL and friends, as the server) and on the PKI folder.
 */
export function registerAdminCommands(program: Command): void {
  const admin = program
    .command('admin')
    .description('administer the server: CA, certificates, mailboxes, workflows, backlogs (uses MESHBOX_REDIS_URL like the server)')
    .option('--pki-dir <dir>', 'folder with ca.crt/ca.key (default: $MESHBOX_PKI_DIR or ./certs of the checkout)');
  const pkiDir = (): string => resolve(admin.opts<{ pkiDir?: string }>().pkiDir ?? process.env.MESHBOX_PKI_DIR ?? DEV_CERTS_DIR);
  registerCaCommands(admin, pkiDir);
  registerCertCommands(admin, pkiDir);
  registerMailboxCommands(admin, pkiDir);
  registerWorkflowCommands(admin);
  registerQueueCommands(admin);
  registerBacklogCommand(admin);
  registerAuditCommands(admin);
}
