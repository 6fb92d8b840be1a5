import { resolve } from 'node:path';
import type { Command } from 'commander';
import { DEV_CERTS_DIR } from '../../../../shared/src/dev-paths.ts';
import { registerAuditCommands } from './audit.ts';
import { registerBacklogCommand } from './backlog.ts';
import { registerCaCommands } from './ca.ts';
import { registerCertCommands } from './cert.ts';
import { registerMailboxCommands } from './mailbox.ts';
import { registerMessageCommand } from './message.ts';
import { registerQueueCommands } from './queues.ts';
import { registerReconcileCommand } from './reconcile.ts';
import { registerWorkflowCommands } from './workflow.ts';

/**
 * `meshbox admin ...`: operator commands. They act on the deployment's Redis directly
 * (MESHBOX_REDIS_URL and friends, as the server) and on the PKI folder.
 */
export function registerAdminCommands(program: Command): void {
  const admin = program
    .command('admin')
    .description('administer the server: CA, certificates, mailboxes, workflows, backlogs, messages (uses MESHBOX_REDIS_URL like the server)')
    .option('--pki-dir <dir>', 'folder with ca.crt/ca.key (default: $MESHBOX_PKI_DIR or ./certs of the checkout)');
  const pkiDir = (): string => pkiDirOf(admin.opts<{ pkiDir?: string }>().pkiDir, process.env);
  registerCaCommands(admin, pkiDir);
  registerCertCommands(admin, pkiDir);
  registerMailboxCommands(admin, pkiDir);
  registerWorkflowCommands(admin);
  registerQueueCommands(admin);
  registerBacklogCommand(admin);
  registerMessageCommand(admin);
  registerReconcileCommand(admin);
  registerAuditCommands(admin);
}

/**
 * The PKI folder: the flag, else MESHBOX_PKI_DIR, else the checkout's certs/. An empty value is
 * an unset one, as for every setting (a compose file or a cron job leaves them so): taken as
 * given, it would be the current folder, and a CA key written wherever the command ran.
 */
export function pkiDirOf(flag: string | undefined, environment: NodeJS.ProcessEnv): string {
  return resolve(flag?.trim() || environment.MESHBOX_PKI_DIR?.trim() || DEV_CERTS_DIR);
}
