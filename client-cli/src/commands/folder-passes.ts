import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { ConnectionSettings, MeshClient } from '../client/mesh-client.ts';
import { type SameFolderCheck, sameFolderCheck } from '../transfer/folder-identity.ts';
import { ignoreMissing } from '../transfer/fs-errors.ts';
import type { PollingOptions } from '../transfer/polling.ts';
import { type CliContext, errorLine, type QuietFlags } from './context.ts';
import { interruption, stopSignal, stoppable } from './interruption.ts';
import { dailyHandshake } from './mailbox-validation.ts';
import {
  DEFAULT_INTERVAL_SECONDS,
  DEFAULT_TRANSFER_RETRIES,
  INTERVAL_HELP,
  intervalOption,
  QUIET_HELP,
  retriesHelp,
  retriesOption,
} from './transfer-options.ts';

/** The flags of a command that works through a folder once, or with --watch until stopped (receive, dispatch). */
export interface FolderPassFlags extends QuietFlags {
  readonly watch?: boolean;
  readonly interval: number;
  readonly retries?: number;
}

export interface FolderPasses {
  /** What is polled, for messages: 'the inbox', 'the folder'. */
  readonly polled: string;
  /** What a stop during a single pass leaves behind, for its message. */
  readonly interrupted: string;
  /**
   * What the stop left of the item in hand, when there is more to say than `interrupted` (whole
   * chunks kept): said in its place, and by --watch as it ends. Asked once the pass has ended.
   */
  readonly cutShort?: () => string | undefined;
  /** One pass, which the signal stops; returns how many items failed. */
  readonly once: (client: MeshClient, signal: AbortSignal) => Promise<number>;
  /** Passes until the signal stops them; a pass that fails as a whole is reported through onPassFailed. */
  readonly watch: (
    client: MeshClient,
    watching: PollingOptions,
  ) => Promise<void>;
}

/** Adds --watch, --interval, --retries and --quiet; `polled` is what --watch keeps polling ('the inbox'); `sends` for dispatch. */
export function withFolderPassOptions(command: Command, polled: string, sends: boolean): Command {
  return command
    .option('--watch', `keep polling ${polled} until stopped (Ctrl-C, SIGTERM or SIGHUP), validating the mailbox (MESH's handshake) at start and daily`)
    .option('--interval <seconds>', INTERVAL_HELP, intervalOption, DEFAULT_INTERVAL_SECONDS)
    .option('--retries <n>', retriesHelp(sends), retriesOption)
    .option('--quiet', QUIET_HELP);
}

/**
 * The command's folder argument, resolved and checked (these commands do not create it), and the
 * check each pass makes that it is still that folder.
 */
export async function existingFolder(
  context: CliContext,
  command: Command,
  folder: string,
  flags: FolderPassFlags,
): Promise<{ readonly folder: string; readonly sameFolder: SameFolderCheck }> {
  // A usage error (exit 2), like any other misuse of the options.
  if (!flags.watch && command.getOptionValueSource('interval') === 'cli') command.error('error: --interval needs --watch');
  const target = resolve(context.io.cwd, folder);
  const found = await stat(target).catch(ignoreMissing);
  if (!found) throw new Error(`${target} does not exist (${command.name()} does not create it): check the path, or make the folder`);
  if (!found.isDirectory()) throw new Error(`${target} is not a folder`);
  return { folder: target, sameFolder: sameFolderCheck(target, found) };
}

/**
 * Runs one pass, or with --watch passes `--interval` apart, until Ctrl-C or SIGTERM, which also
 * end the request in hand: --watch then ends as asked, a single pass as interrupted
 * (InterruptedError). Returns how many items the single pass failed (0 when watching: it
 * reports each as it goes).
 */
export async function runFolderPasses(context: CliContext, command: Command, flags: FolderPassFlags, passes: FolderPasses): Promise<number> {
  const signal = stopSignal(context.io);
  const clientOptions = { retries: flags.retries ?? DEFAULT_TRANSFER_RETRIES, signal };
  const outcome = () => passes.cutShort?.() ?? passes.interrupted;
  if (!flags.watch) {
    const failed = await stoppable(signal, outcome, () => context.withClient(command, (client) => passes.once(client, signal), clientOptions));
    // A pass that the stop cut short returns what it had done.
    if (signal.aborted) throw interruption(signal, outcome());
    return failed;
  }
  context.tell(flags, `watching ${passes.polled} every ${flags.interval} s; Ctrl-C stops`);
  // A watch runs for months: after a pass, or an item, that fails (a certificate expired or revoked, a password
  // changed: 403), the settings are read again, and when they changed on disk (a renewed
  // certificate, key or CA, the profile's new password) the watch goes on with them, unrestarted.
  let settings = await context.settings(command);
  for (let renewing = true; renewing; ) {
    const renewed = new AbortController();
    const takeUpRenewed = async (): Promise<void> => {
      const fresh = await context.settings(command).catch(() => undefined);
      if (fresh === undefined || sameSettings(fresh, settings) || signal.aborted) return;
      settings = fresh;
      context.io.stderr('meshbox: the connection settings changed on disk (a renewed certificate, key or CA, a new password): taken up\n');
      renewed.abort();
    };
    await context.withClient(
      command,
      (client) =>
        passes.watch(client, {
          intervalMs: flags.interval * 1000,
          signal: AbortSignal.any([signal, renewed.signal]),
          onPassFailed: (error, retryInMs) => {
            context.io.stderr(`${errorLine(error)} (${passes.polled} is looked at again in ${retryInMs / 1000} s)\n`);
            void takeUpRenewed();
          },
          // One file refused 403 does not fail its pass (PassEnd): an outbox given a file at a time would never look.
          onItemRefused: () => void takeUpRenewed(),
          beforePass: dailyHandshake(client, (warning) => context.io.stderr(`${warning}\n`)),
        }),
      clientOptions,
      settings,
    );
    renewing = renewed.signal.aborted && !signal.aborted;
  }
  // Ended as asked (exit 0); only what a stop left beyond the usual is worth a line.
  const left = passes.cutShort?.();
  if (left !== undefined) context.io.stderr(`${errorLine(interruption(signal, left))}\n`);
  return 0;
}

function sameSettings(a: ConnectionSettings, b: ConnectionSettings): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
