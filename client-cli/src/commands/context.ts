import type { Command } from 'commander';
import { MeshClientError, MeshConnectionError } from '../client/errors.ts';
import { type ClientOptions, type ConnectionSettings, MeshClient } from '../client/mesh-client.ts';
import { type ConnectionFlags, resolveConnectionSettings } from '../client/settings.ts';
import { noProgress, type ProgressFactory, type ProgressTerminal, terminalOutput } from '../transfer/progress.ts';
import { InterruptedError } from './interruption.ts';

/** Where the CLI reads and writes: the process's by default, a test's when run in-process. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Relative paths (files, -o, --cert ...) resolve against this. */
  readonly cwd: string;
  /** Client tuning (retries, backoff), for tests. */
  readonly clientOptions?: ClientOptions;
  /** stderr when it is a terminal, for progress bars; undefined when it is a pipe or file. */
  readonly stderrTerminal?: ProgressTerminal;
  /**
   * For a command that stops cleanly (download, receive, dispatch: the request in hand ended,
   * temporary files removed): a signal that aborts when the user asks it to stop, its reason an
   * InterruptedError naming the signal. Only such a command asks, so Ctrl-C ends every other
   * command at once.
   */
  readonly stopSignal?: () => AbortSignal;
}

/**
 * Writes to the process's stream. Output nobody reads any more (`meshbox inbox | head`) is
 * dropped, as a command stopped by SIGPIPE would stop writing, but the command's work goes on: a
 * transfer is not given up for a reader that left. Any other failure to write (a full disk under
 * a redirection) fails the command.
 */
function streamWriter(stream: NodeJS.WriteStream): (text: string) => void {
  let state: 'writing' | 'unread' | 'failing' = 'writing';
  // What could not be written may be what the user needs (a sent message's id): it goes to stderr after the failure.
  const onStderr = (text: string): void => {
    if (stream !== process.stderr) process.stderr.write(text);
  };
  // Failures come to each write's callback too; here they are only kept from crashing the process.
  stream.on('error', () => undefined);
  return (text) => {
    if (state === 'unread') return;
    if (state === 'failing') return onStderr(text);
    stream.write(text, (error?: NodeJS.ErrnoException | null) => {
      if (!error) return;
      if (error.code === 'EPIPE') {
        state = 'unread';
        return;
      }
      if (state === 'writing') onStderr(`meshbox: could not write the output (${error.message}); it follows:\n`);
      state = 'failing';
      process.exitCode = 1;
      onStderr(text);
    });
  };
}

let processWriters: { readonly stdout: (text: string) => void; readonly stderr: (text: string) => void } | undefined;

export function processIo(): CliIo {
  processWriters ??= { stdout: streamWriter(process.stdout), stderr: streamWriter(process.stderr) };
  return {
    ...processWriters,
    env: process.env,
    cwd: process.cwd(),
    stopSignal: () => {
      const stop = new AbortController();
      // SIGHUP: the terminal went (an ssh session dropped), and the command in hand stops as for Ctrl-C.
      for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(signal, () => stop.abort(new InterruptedError(signal)));
      return stop.signal;
    },
    // A dumb terminal would show the bar's cursor movements as garbage.
    ...(process.stderr.isTTY && process.env.TERM !== 'dumb' ? { stderrTerminal: process.stderr } : {}),
  };
}

/** What every user command needs: output, and a client built from the global connection flags. */
export interface CliContext {
  readonly io: CliIo;
  /** The command line as typed (after `meshbox`): a command we suggest can repeat it. */
  readonly argv: readonly string[];
  /** Writes one line to stdout. */
  readonly print: (line: string) => void;
  /**
   * Runs `use` with a client for the mailbox the flags, environment or profile name; closes
   * it after. `options` (e.g. a command's --retries) go over the defaults.
   */
  readonly withClient: <T>(command: Command, use: (client: MeshClient) => Promise<T>, options?: ClientOptions, settings?: ConnectionSettings) => Promise<T>;
  /** The connection settings the flags, environment or profile give now (files read afresh). */
  readonly settings: (command: Command) => Promise<ConnectionSettings>;
  /**
   * Progress bars for a transfer: drawn on stderr when it is a terminal and the command was
   * not asked for --json or --quiet; otherwise nothing (scripts see only the result line).
   */
  readonly progress: (flags: QuietFlags) => ProgressFactory;
  /** Writes a line to stderr for a person at a terminal; nothing for --json/--quiet or when stderr is not a terminal. */
  readonly tell: (flags: QuietFlags, line: string) => void;
}

/** The flags that silence progress output. */
export interface QuietFlags {
  readonly json?: boolean;
  readonly quiet?: boolean;
}

/**
 * The connection flags given to a command and to the program above it. Unlike commander's
 * optsWithGlobals (where the program's value wins), a flag after the command name wins.
 */
export function connectionFlags(command: Command): ConnectionFlags {
  const lineage: Command[] = [];
  for (let current: Command | null = command; current; current = current.parent) lineage.unshift(current);
  const flags: ConnectionFlags = {};
  for (const level of lineage) Object.assign(flags, level.opts());
  return flags;
}

export function createContext(io: CliIo, argv: readonly string[] = []): CliContext {
  // One for the command: its progress bars and the lines said to the person share the terminal.
  const terminal = io.stderrTerminal ? terminalOutput(io.stderrTerminal, io.stderr) : undefined;
  const tell = (flags: QuietFlags, line: string): void => {
    if (interactive(flags)) terminal?.say(line);
  };
  return {
    io,
    argv,
    print: (line) => io.stdout(`${line}\n`),
    withClient: async (command, use, options, given) => {
      // Settings are read only when a command needs the server, so --help and admin work without them.
      const settings = given ?? (await resolveConnectionSettings(connectionFlags(command), io));
      const flags = command.opts() as QuietFlags;
      // At a terminal, a wait of seconds before a retry (a server refusing for now, or not reached) would look like a hang.
      const onRetryWait = (reason: string, waitMs: number): void => {
        if (waitMs >= RETRY_WAIT_TOLD_MS) tell(flags, `meshbox: ${reason}; trying again in ${Math.ceil(waitMs / 1000)} s`);
      };
      const client = new MeshClient(settings, { ...io.clientOptions, onRetryWait, ...options });
      try {
        return await use(client);
      } finally {
        client.close();
      }
    },
    settings: (command) => resolveConnectionSettings(connectionFlags(command), io),
    progress: (flags) => (interactive(flags) && terminal ? terminal.progress : noProgress),
    tell,
  };
}

/** Shorter waits before a retry pass unsaid: the first backoffs are a fraction of a second. */
const RETRY_WAIT_TOLD_MS = 1000;

function interactive(flags: QuietFlags): boolean {
  return !flags.json && !flags.quiet;
}

/**
 * What a failed command prints on stderr. A MeshClientError's message is already
 * `<description> (HTTP <status>, MESH code <code>)`.
 */
export function errorLine(error: unknown): string {
  const chain = causes(error);
  const closedOnConnect = chain.find((cause): cause is MeshConnectionError => cause instanceof MeshConnectionError && cause.closedOnConnect);
  const hint = chain.some((cause) => cause instanceof MeshClientError && cause.status === 403)
    ? FORBIDDEN_HINT
    : closedOnConnect
      ? (closedOnConnect.likelyRefusal ?? CLOSED_ON_CONNECT_HINT)
      : undefined;
  // On the first line, with what it explains: a message may go on with a command to copy.
  const [first, ...more] = (error instanceof Error ? error.message : String(error)).split('\n');
  return [`meshbox: ${first}${hint ? ` (${hint})` : ''}`, ...more].join('\n');
}

/** A server refusing a client certificate closes the connection without a word. */
const CLOSED_ON_CONNECT_HINT =
  "the server closed a new connection unanswered: if it keeps doing so, it may be refusing this certificate (revoked, expired, or not from its CA; the server's log says which)";

/** MESH answers every refusal of who you are with the same 403, whatever the cause, and some servers a message that is not yours too: what to check. */
const FORBIDDEN_HINT =
  "check the mailbox id and password, the shared key, that the mailbox is active, and that the certificate is the mailbox's own and not revoked; for a message, that it is this mailbox's (sent to it, or by it to track or resume)";

/** The error and the errors it wraps (`cause`), outermost first. */
function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let current = error; current !== undefined && !chain.includes(current); current = current instanceof Error ? current.cause : undefined) {
    chain.push(current);
  }
  return chain;
}
