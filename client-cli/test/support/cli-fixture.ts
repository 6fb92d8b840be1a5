import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, readdir, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import type { TestMailbox, TestServer } from '../../../test/support/harness.ts';
import type { ConnectionSettings } from '../../src/client/mesh-client.ts';
import type { CliIo } from '../../src/commands/context.ts';
import { runCli } from '../../src/program.ts';
import { CLAIMS_FOLDER } from '../../src/transfer/receive-claims.ts';

export const MAIN = resolve(import.meta.dirname, '../../src/main.js');

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
}

export interface SubprocessOptions extends RunOptions {
  /** Written to the command's stdin, which is then closed. */
  readonly stdin?: string;
}

export interface InProcessOptions extends RunOptions {
  readonly cwd: string;
  /** Pretend stderr is a terminal (80 columns), so progress bars are drawn into `stderr`. */
  readonly tty?: boolean;
  /** What stops a command that runs until stopped (the process's Ctrl-C). */
  readonly stopSignal?: AbortSignal;
  /** See stdout and stderr as they are written, for a test that waits on a command still running. */
  readonly onStdout?: (text: string) => void;
  readonly onStderr?: (text: string) => void;
}

/** Runs the CLI in this process, with its own environment and captured output. */
export async function runInProcess(args: readonly string[], options: InProcessOptions): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const terminal = new Writable({
    write(data: Buffer, _encoding, done) {
      stderr += data.toString();
      done();
    },
  });
  const io: CliIo = {
    stdout: (text) => {
      stdout += text;
      options.onStdout?.(text);
    },
    stderr: (text) => {
      stderr += text;
      options.onStderr?.(text);
    },
    env: options.env ?? {},
    cwd: options.cwd,
    clientOptions: { retryDelayMs: 10 },
    ...(options.tty ? { stderrTerminal: Object.assign(terminal, { isTTY: true, columns: 80 }) } : {}),
    ...(options.stopSignal ? { stopSignal: () => options.stopSignal! } : {}),
  };
  const code = await runCli(args, io);
  return { code, stdout, stderr };
}

/** Runs `node client-cli/src/main.js ...` as its own process, the way users run `meshbox`. */
export function runSubprocess(args: readonly string[], options: SubprocessOptions = {}): Promise<CliResult> {
  return new Promise((done) => {
    const child = execFile(
      process.execPath,
      [MAIN, ...args],
      { cwd: options.cwd, env: { PATH: process.env.PATH, ...options.env } },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        done({ code, stdout, stderr });
      },
    );
    if (options.stdin !== undefined) child.stdin?.end(options.stdin);
  });
}

/** The kill-at hook: a CLI process given MESHBOX_TEST_KILL_AT kills itself just before that file-system step. */
const KILL_AT = resolve(import.meta.dirname, 'kill-at.mjs');

/** A CLI process of its own, to be killed at will. */
export interface RunningCli {
  readonly child: ChildProcess;
  readonly output: () => { stdout: string; stderr: string };
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** The CLI as its own process (`node --import kill-at.mjs main.js ...`), to be killed at will, or by itself at a step (MESHBOX_TEST_KILL_AT in `env`). */
export function startCliProcess(args: readonly string[], options: { readonly cwd: string; readonly env?: Record<string, string> }): RunningCli {
  const child = spawn(process.execPath, ['--import', KILL_AT, MAIN, ...args], {
    cwd: options.cwd,
    env: { PATH: process.env.PATH, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr!.on('data', (data: Buffer) => (stderr += data.toString()));
  // 'close', not 'exit': what the process wrote may still be in its pipes when it has exited.
  const exited = once(child, 'close').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null, stdout, stderr }));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

/** A mailbox's PEM files and CLI profile, as `npm run setup` would write them. */
export interface MailboxFiles {
  readonly mailbox: TestMailbox;
  readonly profile: string;
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  readonly settings: ConnectionSettings;
}

/** Writes `<dir>/<ID>.crt`, `.key`, `ca.crt` and a profile `<ID>.json` with paths relative to it. */
export async function writeMailboxFiles(server: TestServer, mailbox: TestMailbox, dir: string): Promise<MailboxFiles> {
  await mkdir(dir, { recursive: true });
  const cert = join(dir, `${mailbox.id}.crt`);
  const key = join(dir, `${mailbox.id}.key`);
  const ca = join(dir, 'ca.crt');
  const profile = join(dir, `${mailbox.id}.json`);
  await writeFile(cert, mailbox.certPem);
  await writeFile(key, mailbox.keyPem, { mode: 0o600 });
  // Shared by every mailbox in `dir`, and read by commands running while another test adds one:
  // replaced whole by a rename, never seen empty or half-written.
  const caDraft = `${ca}.${randomBytes(4).toString('hex')}`;
  await writeFile(caDraft, server.caPem);
  await rename(caDraft, ca);
  const profileJson = {
    url: server.origin,
    mailbox: mailbox.id.toLowerCase(),
    password: mailbox.password,
    sharedKey: server.sharedKey,
    cert: `${mailbox.id}.crt`,
    key: `${mailbox.id}.key`,
    ca: 'ca.crt',
  };
  await writeFile(profile, JSON.stringify(profileJson, null, 2));
  return { mailbox, profile, cert, key, ca, settings: connectionSettings(server, mailbox) };
}

/** A sender and a recipient of their own (a test's inbox then holds only what it sent), profiles in `dir`. */
export async function mailboxPair(server: TestServer, dir: string): Promise<{ lab: MailboxFiles; gp: MailboxFiles }> {
  return {
    lab: await writeMailboxFiles(server, await server.createMailbox(), dir),
    gp: await writeMailboxFiles(server, await server.createMailbox(), dir),
  };
}

/** How a MeshClient reaches a test server as a mailbox. */
export function connectionSettings(server: TestServer, mailbox: TestMailbox, origin = server.origin): ConnectionSettings {
  return {
    url: origin,
    mailboxId: mailbox.id,
    password: mailbox.password,
    sharedKey: server.sharedKey,
    certPem: mailbox.certPem,
    keyPem: mailbox.keyPem,
    caPem: server.caPem,
  };
}

/** What is saved in `folder`: a message receive has not acknowledged keeps its claim in CLAIMS_FOLDER till then. */
export async function savedIn(folder: string): Promise<string[]> {
  return (await readdir(folder)).filter((name) => name !== CLAIMS_FOLDER);
}
