import { type Command, Option } from 'commander';
import { SERVER_ROLES } from '../../../server/src/roles.ts';

/**
 * `meshbox serve --role api|worker|all`: the server itself (what `npm start` runs), for
 * deployments that run API and worker processes apart. Configured by MESHBOX_* variables.
 */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the meshbox server (configured by MESHBOX_* environment variables, see README)')
    .addOption(
      new Option('--role <role>', 'api (MESH requests), worker (lifecycle jobs; serves only health and metrics) or all (default: MESHBOX_ROLE, else all)').choices(
        SERVER_ROLES,
      ),
    )
    .action(async (options: { role?: string }) => {
      if (options.role) process.env.MESHBOX_ROLE = options.role;
      // The server runs until it is signalled; it exits by itself after a graceful shutdown.
      await import('../../../server/src/main.ts');
    });
}
