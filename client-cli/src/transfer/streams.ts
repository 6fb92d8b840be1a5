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

/**
 * Passes data through one piece late, and the last piece only once `check` (given the bytes that
 * came) has passed at the end: a check that throws fails the stream before its end goes out.
 */
export class ReleasedWhenChecked extends Transform {
  #held: Buffer | undefined;
  #bytes = 0;
  readonly #check: (bytes: number) => Promise<void>;

  constructor(check: (bytes: number) => Promise<void>) {
    super();
    this.#check = check;
  }

  override _transform(data: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#bytes += data.length;
    const previous = this.#held;
    this.#held = data;
    done(null, previous);
  }

  override _flush(done: TransformCallback): void {
    this.#check(this.#bytes).then(
      () => done(null, this.#held),
      (error: unknown) => done(error as Error),
    );
  }
}
