/** `npm run services -- start|stop|status`: the local Redis and S3 server for development and tests. */
import { ensureLocalServices, localServicesStatus, stopLocalServices } from './services/index.ts';

const command = process.argv[2] ?? 'status';
try {
  if (command === 'start') {
    const services = await ensureLocalServices();
    console.log(`redis ${services.redisUrl}`);
    console.log(`s3 ${services.s3.endpoint}`);
  } else if (command === 'stop') {
    await stopLocalServices();
    console.log('stopped');
  } else if (command === 'status') {
    const status = await localServicesStatus();
    console.log(`redis ${status.redis ?? 'stopped'}`);
    console.log(`s3 ${status.s3 ?? 'stopped'}`);
  } else {
    console.error('usage: node scripts/services.ts start|stop|status');
    process.exit(2);
  }
} catch (error) {
  console.error(`services: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
