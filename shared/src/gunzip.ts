import { Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';

/**
 * Gunzips one gzip-encoded chunk. Members one after another are read whole, as RFC 1952 has
 * them. But zlib alone ends quietly where its input does not: after a member it stops at a zero
 * byte and ignores whatever follows, which other readers decode (Python's gzip module as another
 * member), a part of the message lost unsaid. So data after such a stop fails the stream, with
 * zlib's code for corrupt input (Z_DATA_ERROR), before it ends; zero padding alone is no data,
 * and passes. What follows is weighed as it arrives, however it is split into pieces. (NHS's
 * mesh-client reads a chunk's first member only: docs/api.md.)
 */
export function gunzipWhole(): Transform {
  return new WholeGunzip();
}

class WholeGunzip extends Transform {
  readonly #zlib = createGunzip();
  #received = 0;
  /** The offset just past the last byte received that is not zero. */
  #dataEnd = 0;
  /** zlib has ended its output: the input after it is only weighed. */
  #stopped = false;
  /** zlib took less than it was given: it stopped reading (its output may not all be out yet), and what follows is only weighed. */
  #inputStopped = false;

  constructor() {
    super();
    // Decompressed faster than it is taken (a zip bomb's output): zlib waits, and so does its input.
    this.#zlib.on('data', (data: Buffer) => {
      if (!this.push(data)) this.#zlib.pause();
    });
    this.#zlib.once('end', () => (this.#stopped = true));
    this.#zlib.once('error', (error) => this.destroy(error));
  }

  override _read(size: number): void {
    this.#zlib.resume();
    super._read(size);
  }

  override _transform(data: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const last = lastNonZero(data);
    if (last >= 0) this.#dataEnd = this.#received + last + 1;
    this.#received += data.length;
    if (this.#stopped || this.#inputStopped) return done();
    this.#zlib.write(data, () => {
      // Written on into a zlib that stopped, a member after the padding would be decoded past its end.
      if (this.#zlib.bytesWritten < this.#received) this.#inputStopped = true;
      done();
    });
  }

  override _flush(done: TransformCallback): void {
    const judge = (): void => {
      // bytesWritten: the input zlib took in, which stops where it stopped reading.
      const ignored = this.#dataEnd - this.#zlib.bytesWritten;
      if (ignored <= 0) return done();
      const error: NodeJS.ErrnoException = new Error(`${ignored} bytes follow the gzip data after a zero byte, which gunzip would ignore`);
      error.code = 'Z_DATA_ERROR';
      done(error);
    };
    if (this.#stopped) return judge();
    this.#zlib.once('end', judge);
    this.#zlib.end();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#zlib.destroy();
    callback(error);
  }
}

/** Most pieces end in data, so this is seldom more than one look. */
function lastNonZero(data: Buffer): number {
  for (let index = data.length - 1; index >= 0; index--) if (data[index] !== 0) return index;
  return -1;
}
