import { randomBytes } from 'node:crypto';
import { pipeline, Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import test from 'ava';
import { gunzipWhole } from '../src/gunzip.ts';

/** The pieces as they would come off a socket: one at a time, apart. */
function arriving(parts: readonly Buffer[]): Readable {
  return Readable.from(
    (async function* () {
      for (const part of parts) {
        yield part;
        await sleep(5);
      }
    })(),
  );
}

async function gunzipped(parts: readonly Buffer[]): Promise<string> {
  const decoded = gunzipWhole();
  pipeline(arriving(parts), decoded, () => undefined);
  const got: Buffer[] = [];
  for await (const data of decoded) got.push(data as Buffer);
  return Buffer.concat(got).toString();
}

const first = gzipSync('MSH|first');
const second = gzipSync('|second');

test('members one after another are read whole, however they are split', async (t) => {
  const whole = Buffer.concat([first, second]);
  t.is(await gunzipped([whole]), 'MSH|first|second');
  t.is(await gunzipped([...whole].map((byte) => Buffer.from([byte]))), 'MSH|first|second', 'a byte a piece');
});

test('data after a zero byte that follows a member is refused as corrupt (Z_DATA_ERROR), in one piece or arriving after the stop, however much padding comes first', async (t) => {
  const refused = { code: 'Z_DATA_ERROR', message: /bytes follow the gzip data after a zero byte/ };
  await t.throwsAsync(gunzipped([Buffer.concat([first, Buffer.from([0]), second])]), refused);
  await t.throwsAsync(gunzipped([Buffer.concat([first, Buffer.from([0])]), second]), refused, 'the rest in a later piece');
  await t.throwsAsync(gunzipped([first, Buffer.alloc(200_000), second]), refused, 'padding longer than a read');
  await t.throwsAsync(gunzipped([first, Buffer.from([0, 0, 7])]), refused);
});

test('zero padding alone is no data: the member is read', async (t) => {
  t.is(await gunzipped([first, Buffer.alloc(200_000)]), 'MSH|first');
  t.is(await gunzipped([Buffer.concat([first, Buffer.alloc(3)])]), 'MSH|first');
});

test('corrupt gzip keeps zlib\'s own code, and a stream cut short its own error', async (t) => {
  await t.throwsAsync(gunzipped([Buffer.concat([first.subarray(0, 10), Buffer.from('not deflate at all')])]), { code: 'Z_DATA_ERROR' });
  await t.throwsAsync(gunzipped([first.subarray(0, first.length - 3)]), { code: 'Z_BUF_ERROR' });
});

test('a large output is handed on as it is read, not gathered: zlib waits for a reader that waits', async (t) => {
  const zeros = gzipSync(Buffer.alloc(64 * 1024 * 1024));
  const decoded = gunzipWhole();
  pipeline(Readable.from([zeros]), decoded, () => undefined);
  await sleep(200);
  t.true(decoded.readableLength <= 1024 * 1024, `${decoded.readableLength} bytes held for a reader that reads nothing`);
  let total = 0;
  for await (const data of decoded) total += (data as Buffer).length;
  t.is(total, 64 * 1024 * 1024);
});

test('a member after the padding, while zlib still hands a large first member to a slow reader, is refused as corrupt, not decoded past zlib\'s end', async (t) => {
  const large = gzipSync(randomBytes(1_000_000));
  const slowly = (parts: readonly Buffer[]): Promise<number> => {
    let total = 0;
    const slow = new Writable({
      highWaterMark: 1024,
      write(data: Buffer, _encoding, done) {
        total += data.length;
        setTimeout(done, 0);
      },
    });
    return new Promise((resolve, reject) => pipeline(Readable.from(parts), gunzipWhole(), slow, (error) => (error ? reject(error) : resolve(total))));
  };
  await t.throwsAsync(slowly([large, Buffer.from([0]), second]), { code: 'Z_DATA_ERROR' });
  t.is(await slowly([large, Buffer.from([0])]), 1_000_000, 'the member alone, padded, is read whole');
});
