import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { BUSY_SERVICE_PATIENCE_MS, commandLine, readInteger, stopProcess, tail, waitFor } from './processes.ts';

export interface S3Process {
  readonly port: number;
  readonly pid: number;
}

/** s3rver accepts any signature made with these; path-style addressing. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', region: 'us-east-1' } as const;

/** Set by s3rver-process.ts on every response: the pid of the s3rver answering. */
export const PID_HEADER = 'x-meshbox-s3rver-pid';

const RUNNER = join(import.meta.dirname, 's3rver-process.ts');
const START_TIMEOUT_MS = 15_000;

function s3Paths(dataDir: string): { objects: string; pidFile: string; portFile: string; logFile: string } {
  const dir = join(dataDir, 's3');
  return { objects: join(dir, 'objects'), pidFile: join(dir, 's3rver.pid'), portFile: join(dir, 's3rver.port'), logFile: join(dir, 's3rver.log') };
}

/** Whether the pid is still our runner serving this data directory (and not a reused pid). */
function isOurS3Process(dataDir: string, s3: S3Process): boolean {
  const command = commandLine(s3.pid);
  return command.includes(RUNNER) && command.includes(s3Paths(dataDir).objects);
}

/** Our s3rver, ready: the pid is our runner, and its port answers GET / like s3rver, naming that pid. */
export async function isOurS3(dataDir: string, s3: S3Process): Promise<boolean> {
  if (!isOurS3Process(dataDir, s3)) return false;
  const answer = await get(s3.port);
  if (answer?.status !== 200 || !answer.body.includes('<ListAllMyBucketsResult')) return false;
  // No header: started by an earlier version of these scripts (its command line matched above).
  return answer.pidHeader === undefined || answer.pidHeader === String(s3.pid);
}

function get(port: number, timeoutMs = 2_000): Promise<{ status: number; pidHeader: string | undefined; body: string } | undefined> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (part: string) => (body += part));
      res.on('end', () => {
        const header = res.headers[PID_HEADER];
        resolve({ status: res.statusCode ?? 0, pidHeader: typeof header === 'string' ? header : undefined, body });
      });
      res.on('error', () => resolve(undefined));
    });
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** The recorded s3rver when it is (or soon becomes) ready, else a freshly started one. */
export async function ensureS3(dataDir: string, recorded: S3Process | undefined): Promise<S3Process> {
  if (recorded && isOurS3Process(dataDir, recorded)) {
    if (await waitFor(() => isOurS3(dataDir, recorded), BUSY_SERVICE_PATIENCE_MS)) return recorded;
    await stopProcess(recorded.pid); // alive but not answering for so long: hung, replace it
  }
  return startS3(dataDir);
}

export async function stopS3(dataDir: string, recorded: S3Process | undefined): Promise<void> {
  if (recorded && isOurS3Process(dataDir, recorded)) await stopProcess(recorded.pid);
}

/** Starts s3rver as a detached background process storing objects under `<dataDir>/s3/objects`. */
async function startS3(dataDir: string): Promise<S3Process> {
  const { objects, pidFile, portFile, logFile } = s3Paths(dataDir);
  mkdirSync(objects, { recursive: true });
  rmSync(pidFile, { force: true });
  rmSync(portFile, { force: true });
  const log = openSync(logFile, 'a');
  const child = spawn(process.execPath, [RUNNER, objects, pidFile, portFile], {
    detached: true, // its own process group: it outlives us and our terminal's Ctrl-C
    stdio: ['ignore', log, log],
    // For this process only: s3rver's paged ListObjectsV2 builds its continuation token with
    // DES, which OpenSSL 3 keeps in the legacy provider.
    env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' },
  });
  closeSync(log);
  child.unref();
  let exited = false;
  child.once('exit', () => (exited = true));
  const pid = child.pid ?? 0;
  const ready = async (): Promise<boolean> => {
    const port = readInteger(portFile);
    return port !== undefined && readInteger(pidFile) === pid && isOurS3(dataDir, { pid, port });
  };
  const started = (await waitFor(async () => exited || ready(), START_TIMEOUT_MS)) && (await ready());
  const port = readInteger(portFile);
  if (started && port !== undefined) return { pid, port };
  if (!exited) await stopProcess(pid);
  throw new Error(`the S3 server (s3rver) did not start${exited ? ' (it exited)' : ''}; last lines of ${logFile}:\n${tail(logFile)}`);
}
