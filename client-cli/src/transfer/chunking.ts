/** mesh-client's default: well under MESH's 100 MB per request, whatever gzip adds. */
export const DEFAULT_CHUNK_SIZE = 75 * 1024 * 1024;

/**
 * Size units, as GNU tools read them: KB/MB/GB are powers of 1000, K/M/G and KiB/MiB/GiB
 * powers of 1024 (so `split -b 20M` and `--chunk-size 20M` agree).
 */
const UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  kb: 1000,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
  gb: 1000 ** 3,
};

export const SIZE_FORMS = 'bytes, or a number with a unit: B, KB, MB, GB (powers of 1000), K, M, G, KiB, MiB, GiB (powers of 1024), e.g. 20MiB';

/** `20MiB`, `100MB`, `1.5G`, `65536` → bytes; undefined when it is not a whole, positive number of bytes. */
export function parseByteSize(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!match) return undefined;
  const unit = UNITS[(match[2] ?? '').toLowerCase()];
  if (unit === undefined) return undefined;
  const bytes = Number(match[1]) * unit;
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

/** Bytes for people: `512 B`, `64 KiB`, `150.5 KiB`, `1.23 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0 || Number.isInteger(value)) return `${value} ${units[unit]}`;
  return `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

/** A chunk size as one word `--chunk-size` takes back exactly: `64KiB`, `75MiB`, or bytes (`60000`) where a unit would round it. */
export function chunkSizeWord(bytes: number): string {
  const whole = /^(\d+) ([KMGT]iB)$/.exec(formatBytes(bytes));
  return whole ? `${whole[1]}${whole[2]}` : String(bytes);
}

/** `--chunk-size` as one word that gives the default (`75MiB`). */
export const DEFAULT_CHUNK_SIZE_WORD = chunkSizeWord(DEFAULT_CHUNK_SIZE);

/** One chunk's bytes of the file: `start` to `end` inclusive, as fs.createReadStream takes them. */
export interface ChunkSpan {
  readonly number: number;
  readonly start: number;
  /** Inclusive; `start - 1` for the one empty chunk of an empty file. */
  readonly end: number;
  readonly length: number;
}

/** How a file of `fileSize` bytes splits into chunks of `chunkSize` (the last may be shorter). */
export class ChunkPlan {
  readonly fileSize: number;
  readonly chunkSize: number;
  readonly totalChunks: number;

  constructor(fileSize: number, chunkSize: number) {
    this.fileSize = fileSize;
    this.chunkSize = chunkSize;
    // An empty file is still one (empty) chunk: a message always has chunk 1.
    this.totalChunks = Math.max(1, Math.ceil(fileSize / chunkSize));
  }

  span(number: number): ChunkSpan {
    if (!Number.isInteger(number) || number < 1 || number > this.totalChunks) {
      throw new RangeError(`chunk ${number} is not one of 1..${this.totalChunks}`);
    }
    const start = (number - 1) * this.chunkSize;
    const length = Math.min(this.chunkSize, this.fileSize - start);
    return { number, start, end: start + length - 1, length };
  }

  /** Bytes in the given chunks. */
  bytesIn(numbers: Iterable<number>): number {
    let total = 0;
    for (const number of numbers) total += this.span(number).length;
    return total;
  }
}
