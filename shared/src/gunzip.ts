import { Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';

/**
 * The stages that gunzip one gzip-encoded chunk, to be piped in this order. Members one after
 * another are read whole, as RFC 1952 has them. But zlib alone ends quietly where its input
 * does not: after a member it stops at a zero byte and ignores whatever follows, which other
 * readers decode (Python's gzip module as another member), a part of the message lost unsaid.
 * So data left after such a stop fails the stream, with zlib's code for corrupt input
 * (Z_DATA_ERROR), before it ends; zero padding alone is no data, and passes. (NHS's mesh-client
 * reads a chunk's first member only: docs/api.md.)
 */
export function gunzipStages(): readonly [Transform, Transform, Transform] {
  let received = 0;
  /** The offset just past the last byte received that is not zero. */
  let dataEnd = 0;
  const measure = new Transform({
    transform(data: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
      const last = lastNonZero(data);
      if (last >= 0) dataEnd = received + last + 1;
      received += data.length;
      done(null, data);
    },
  });
  const gunzip = createGunzip();
  const checkEnd = new Transform({
    transform(data: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
      done(null, data);
    },
    flush(done: TransformCallback): void {
      // bytesWritten: the input zlib took in, which stops where it stopped reading.
      if (gunzip.bytesWritten >= dataEnd) return done();
      const error: NodeJS.ErrnoException = new Error(`${dataEnd - gunzip.bytesWritten} bytes follow the gzip data after a zero byte, which gunzip would ignore`);
      error.code = 'Z_DATA_ERROR';
      done(error);
    },
  });
  return [measure, gunzip, checkEnd];
}

/** Most pieces end in data, so this is seldom more than one look. */
function lastNonZero(data: Buffer): number {
  for (let index = data.length - 1; index >= 0; index--) if (data[index] !== 0) return index;
  return -1;
}
