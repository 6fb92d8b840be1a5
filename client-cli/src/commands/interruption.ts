import { constants } from 'node:os';
import type { CliIo } from './context.ts';

/** The user stopped a run (Ctrl-C, SIGTERM, SIGHUP) before it finished. */
export class InterruptedError extends Error {
  readonly signalName: NodeJS.Signals;
  /** 128 + the signal's number, as shells report a process a signal ended: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP. */
  readonly exitCode: number;

  constructor(signalName: NodeJS.Signals, outcome?: string) {
    super(`stopped by ${signalName}${outcome === undefined ? '' : `: ${outcome}`}`);
    this.name = 'InterruptedError';
    this.signalName = signalName;
    this.exitCode = 128 + constants.signals[signalName];
  }
}

/** A signal that aborts when the user asks the command to stop; one that never does when the io has no such thing. */
export function stopSignal(io: CliIo): AbortSignal {
  return io.stopSignal?.() ?? new AbortController().signal;
}

/** The stop, saying what it left behind. A stop that names no signal (a test's) counts as Ctrl-C. */
export function interruption(stop: AbortSignal, outcome: string): InterruptedError {
  return new InterruptedError(stop.reason instanceof InterruptedError ? stop.reason.signalName : 'SIGINT', outcome);
}

/**
 * Runs `run`, which gives `stop` to its client; a failure once the stop has fired is the stop's
 * doing (an aborted request), reported as the interruption, with `outcome()` (asked then: what the
 * run left may be known only once it ended). A run that finished regardless stands.
 */
export async function stoppable<T>(stop: AbortSignal, outcome: () => string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (stop.aborted) throw interruption(stop, outcome());
    throw error;
  }
}
