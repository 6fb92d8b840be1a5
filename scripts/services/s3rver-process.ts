/**
 * The local S3 server as its own process (it outlives the script that starts it, like the
 * daemonized Redis). Listens on 127.0.0.1 and an OS-chosen port, then writes that port to
 * the ready file the starter waits for.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const [directory, readyFile] = process.argv.slice(2);
if (!directory || !readyFile) throw new Error('usage: s3rver-process.ts <directory> <ready-file>');

interface S3rverInstance {
  run(): Promise<{ port: number }>;
}
const S3rver = createRequire(import.meta.url)('s3rver') as new (options: object) => S3rverInstance;
const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true });
const { port } = await server.run();
writeFileSync(readyFile, String(port));
process.on('SIGTERM', () => process.exit(0));
