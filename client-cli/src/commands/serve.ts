import type { Command } from 'commander';

/**
 * `meshbox serve --role api|worker|all`: the server itself (what `npm start` runs), for
 * deployments that run API and worker processes apart. Configured by MESHBOX_* variables.
 */
export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the meshbox server (configured by MESHBOX_* environment variables, see README)')
    .option('--role <role>', 'api (MESH requests), worker (lifecycle jobs; serves only health and metrics) or all', 'all')
    .action(async (options: { role: string }) => {
      if (!['api', 'worker', 'all'].includes(options.role)) throw new Error(`--role must be api, worker or all, not "${options.role}"`);
      process.env.MESHBOX_ROLE = options.role;
      // The server runs until it is signalled; it exits by itself after a graceful shutdown.
      await import('../../../server/src/main.ts');
    });
}
