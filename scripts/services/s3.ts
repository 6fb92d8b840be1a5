import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { processAlive, stopProcess, waitFor } from './processes.ts';
import { tail } from './redis.ts';

export interface S3Process {
  readonly port: number;
  readonly pid: number;
}

export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', region: 'us-east-1' } as const;

/** True when the pid is alive and its port answers like s3rver (an S3 XML bucket listing). */
export async function isOurS3(s3: S3Process): Promise<boolean> {
  if (!processAlive(s3.pid)) return false;
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: s3.port, path: '/', method: 'GET', timeout: 2_000 }, (res) => {
      let body = '';
      res.on('data', (part: Buffer) => (body += part.toString()));
      res.on('end', () => resolve(res.statusCode === 200 && body.includes('ListAllMyBucketsResult')));
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Starts s3rver as a detached process storing objects under `<dataDir>/s3`. */
export async function startS3(dataDir: string): Promise<S3Process> {
  const dir = join(dataDir, 's3');
  mkdirSync(join(dir, 'objects'), { recursive: true });
  const readyFile = join(dir, 'port');
  const logFile = join(dir, 's3rver.log');
  rmSync(readyFile, { force: true });
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, [join(import.meta.dirname, 's3rver-process.ts'), join(dir, 'objects'), readyFile], {
    detached: true,
    stdio: ['ignore', log, log],
    // Only this process: s3rver's paged ListObjectsV2 needs DES, which OpenSSL 3 keeps in its legacy provider.
    env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' },
  });
  child.unref();
  const pid = child.pid ?? 0;
  const ready = await waitFor(async () => existsSync(readyFile) && isOurS3({ pid, port: Number(readFileSync(readyFile, 'utf8')) }), 15_000);
  if (!ready) {
    if (pid > 0) await stopProcess(pid);
    throw new Error(`the S3 server did not start; last lines of ${logFile}:\n${tail(logFile)}`);
  }
  return { pid, port: Number(readFileSync(readyFile, 'utf8')) };
}
