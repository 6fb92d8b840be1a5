/**
 * The local S3 server (s3rver) as its own process, so it outlives the script that starts it,
 * like the daemonized Redis. `node s3rver-process.ts <objects-dir> <pid-file> <port-file>`:
 * listens on 127.0.0.1 on a port the OS picks (no race with other programs), writes its pid,
 * then the port; the port file appearing is the starter's signal that it is listening.
 */
import { createRequire } from 'node:module';
import { writeFileAtomic } from './processes.ts';
import { PID_HEADER } from './s3.ts';

interface S3rverInstance {
  /** Koa's middleware list (S3rver extends Koa); composed when the server starts. */
  middleware: Array<(ctx: { set(name: string, value: string): void }, next: () => Promise<void>) => Promise<void>>;
  run(): Promise<{ port: number }>;
}
type S3rverClass = new (options: { address: string; port: number; directory: string; silent: boolean }) => S3rverInstance;

const [directory, pidFile, portFile] = process.argv.slice(2);
if (!directory || !pidFile || !portFile) throw new Error('usage: s3rver-process.ts <objects-dir> <pid-file> <port-file>');
// s3rver is CommonJS without type declarations.
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;
const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true });
// Every answer names this process, so the starter can tell our s3rver from anything else
// on the port (as it compares Redis's process_id for Redis).
server.middleware.unshift(async (ctx, next) => {
  ctx.set(PID_HEADER, String(process.pid));
  await next();
});
const { port } = await server.run();
writeFileAtomic(pidFile, `${process.pid}\n`);
writeFileAtomic(portFile, `${port}\n`);
console.log(`${new Date().toISOString()} s3rver pid ${process.pid} listening on 127.0.0.1:${port}, objects in ${directory}`);
process.on('SIGTERM', () => process.exit(0));
