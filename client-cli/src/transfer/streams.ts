import { Transform, type TransformCallback } from 'node:stream';

/** Passes data through unchanged, counting it (for progress bars and length checks). */
export class ByteCounter extends Transform {
  bytes = 0;
  readonly #onBytes: ((bytes: number) => void) | undefined;

  constructor(onBytes?: (bytes: number) => void) {
    super();
    this.#onBytes = onBytes;
  }

  override _transform(data: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += data.length;
    this.#onBytes?.(data.length);
    done(null, data);
  }
}
