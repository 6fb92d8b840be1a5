import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

export const MiB = 1024 * 1024;

/**
 * Incompressible bytes generated as they are read, so neither tests nor benchmarks hold a
 * large payload in memory. Each MiB starts with its index, so the content is not periodic,
 * and a range [offset, offset + length) is the same bytes every time for one generator.
 */
export class PayloadGenerator {
  readonly #block = randomBytes(MiB);

  stream(offset: number, length: number): Readable {
    let position = offset;
    const end = offset + length;
    const block = this.#block;
    return new Readable({
      read() {
        if (position >= end) {
          this.push(null);
          return;
        }
        const size = Math.min(MiB - (position % MiB), end - position);
        const part = Buffer.from(block.subarray(position % MiB, (position % MiB) + size));
        if (position % MiB === 0 && size >= 4) part.writeUInt32BE(position / MiB, 0);
        position += size;
        this.push(part);
      },
    });
  }
}
