/**
 * `node scripts/services.ts start|stop|status|reset [--data-dir DIR]` (or `npm run services -- start`):
 * the local Redis and S3 server meshbox uses for development and tests (see scripts/services/).
 * `reset` stops them and deletes their data.
 */
import { parseArgs } from 'node:util';
import { ensureLocalServices, localServicesStatus, resetLocalServices, stopLocalServices } from './services/index.ts';

const usage = 'usage: node scripts/services.ts start|stop|status|reset [--data-dir DIR]';

try {
  const { positionals, values } = parseArgs({ allowPositionals: true, options: { 'data-dir': { type: 'string' } } });
  const options = { dataDir: values['data-dir'] };
  const command = positionals[0] ?? 'status';
  if (positionals.length > 1) throw new Error(usage);
  if (command === 'start') {
    const services = await ensureLocalServices(options);
    console.log(`redis ${services.redisUrl}`);
    console.log(`s3 ${services.s3.endpoint}`);
  } else if (command === 'stop') {
    await stopLocalServices(options);
    console.log('redis stopped');
    console.log('s3 stopped');
  } else if (command === 'reset') {
    await resetLocalServices(options);
    console.log('redis and s3 stopped, their data deleted (`npm run setup` registers the demo mailboxes again)');
  } else if (command === 'status') {
    const status = await localServicesStatus(options);
    console.log(status.redis ? `redis running ${status.redis}` : 'redis stopped');
    console.log(status.s3 ? `s3 running ${status.s3}` : 's3 stopped');
  } else {
    throw new Error(usage);
  }
} catch (error) {
  console.error(`services: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
