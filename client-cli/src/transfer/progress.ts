import { SingleBar } from 'cli-progress';
import { formatBytes } from './chunking.ts';

/** Where a progress bar draws: a terminal (stderr when it is one). */
export interface ProgressTerminal extends NodeJS.WritableStream {
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export interface ProgressSpec {
  /** Shown first, e.g. `sending`. */
  readonly label: string;
  /**
   * `bytes`: the bar counts bytes of a known total (sending, hashing). `chunks`: it counts
   * chunks, with bytes shown beside, when the byte total is not known up front (downloading).
   */
  readonly unit: 'bytes' | 'chunks';
  readonly total: number;
  /** Where the bar starts (a resumed upload starts with the chunks already stored). */
  readonly initialValue?: number;
  readonly initialBytes?: number;
}

/** One transfer's progress display; every method is safe to call when nothing is shown. */
export interface TransferProgress {
  /** How far the transfer is: `value` of the total (bytes or chunks), `bytes` moved so far. */
  update(value: number, bytes: number): void;
  /** Writes a line above the bar, e.g. the message id to resume with. */
  note(line: string): void;
  /** Removes the bar (the terminal is left as it was); idempotent. */
  stop(): void;
}

export type ProgressFactory = (spec: ProgressSpec) => TransferProgress;

const SILENT: TransferProgress = {
  update: () => undefined,
  note: () => undefined,
  stop: () => undefined,
};

/** No display at all: output is not a terminal, or --json/--quiet asked for quiet. */
export const noProgress: ProgressFactory = () => SILENT;

/** Updates reach the bar at most this often: cli-progress's ETA averages over its last updates, so they should be spaced in time. */
const UPDATE_INTERVAL_MS = 100;
/** ~5 s of updates. */
const ETA_SAMPLES = 50;

/** Kept within 80 columns for the sizes of real transfers (a longer line is cut at the terminal's width). */
const FORMATS: Readonly<Record<ProgressSpec['unit'], string>> = {
  bytes: '{label} [{bar}] {percentage}% {done}/{size} {rate} ETA {eta_formatted}',
  chunks: '{label} [{bar}] {value}/{total} chunks {done} {rate} {duration_formatted}',
};

/** Progress bars on a terminal, and lines said to the person at it. */
export interface TerminalOutput {
  readonly progress: ProgressFactory;
  /** Writes a line above the bar drawn now, or plainly when none is: a bar redrawn over it would garble it. */
  readonly say: (line: string) => void;
}

/**
 * Progress bars on a terminal (cli-progress). Notes go through `writeNote`, which writes to
 * the same terminal: the bar is cleared first and drawn again below the note.
 */
export function terminalOutput(terminal: ProgressTerminal, writeNote: (text: string) => void): TerminalOutput {
  const drawn: TerminalProgress[] = [];
  return {
    progress: (spec) => new TerminalProgress(terminal, writeNote, spec, drawn),
    say: (line) => {
      const bar = drawn.at(-1);
      if (bar) bar.note(line);
      else writeNote(`${line}\n`);
    },
  };
}

class TerminalProgress implements TransferProgress {
  readonly #terminal: ProgressTerminal;
  readonly #writeNote: (text: string) => void;
  readonly #spec: ProgressSpec;
  #bar: SingleBar | undefined;
  #value: number;
  #bytes: number;
  /** Rate is measured from here (bytes and time), so a resumed upload's stored chunks do not count. */
  readonly #startBytes: number;
  readonly #startTime = Date.now();
  #lastDrawn = 0;
  /** The bars on the terminal now, this one among them until it stops. */
  readonly #drawn: TerminalProgress[];

  constructor(terminal: ProgressTerminal, writeNote: (text: string) => void, spec: ProgressSpec, drawn: TerminalProgress[]) {
    this.#terminal = terminal;
    this.#writeNote = writeNote;
    this.#spec = spec;
    this.#drawn = drawn;
    drawn.push(this);
    this.#value = spec.initialValue ?? 0;
    this.#bytes = spec.initialBytes ?? (spec.unit === 'bytes' ? this.#value : 0);
    this.#startBytes = this.#bytes;
    this.#bar = this.#draw();
  }

  update(value: number, bytes: number): void {
    this.#value = value;
    this.#bytes = bytes;
    const now = Date.now();
    if (now - this.#lastDrawn < UPDATE_INTERVAL_MS) return;
    this.#lastDrawn = now;
    this.#bar?.update(value, this.#payload());
  }

  note(line: string): void {
    if (!this.#bar) return;
    // cli-progress cannot print above a single bar: take it down, print, put it back.
    this.#bar.stop();
    this.#writeNote(`${line}\n`);
    this.#bar = this.#draw();
  }

  stop(): void {
    if (!this.#bar) return;
    this.#drawn.splice(this.#drawn.indexOf(this), 1);
    this.#bar.update(this.#value, this.#payload());
    this.#bar.stop();
    this.#bar = undefined;
  }

  #draw(): SingleBar {
    const bar = new SingleBar({
      stream: this.#terminal,
      format: FORMATS[this.#spec.unit],
      barsize: 20,
      // Leave the terminal's settings alone: a process killed mid-transfer cannot restore them.
      hideCursor: false,
      linewrap: true,
      gracefulExit: false,
      // Gone when done: the result line (and any note) is what stays on screen.
      clearOnComplete: true,
      etaBuffer: ETA_SAMPLES,
    });
    bar.start(this.#spec.total, this.#value, this.#payload());
    return bar;
  }

  #payload(): Record<string, string> {
    const seconds = (Date.now() - this.#startTime) / 1000;
    const moved = this.#bytes - this.#startBytes;
    return {
      label: this.#spec.label,
      done: formatBytes(this.#bytes),
      size: formatBytes(this.#spec.total),
      rate: seconds > 0 ? `${formatBytes(Math.round(moved / seconds))}/s` : '-',
    };
  }
}
