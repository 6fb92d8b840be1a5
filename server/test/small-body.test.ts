import test from 'ava';
import { Readable } from 'node:stream';
import { PayloadTooLargeError, readSmallBody } from '../src/domain/chunk-storage.ts';

const body = (parts: readonly string[]) => ({ stream: Readable.from(parts.map((part) => Buffer.from(part))), contentLength: undefined, contentEncoding: '' });

test('a small body is read whole within what is held for it, and refused (413) at the first byte past it rather than read on into memory', async (t) => {
  t.is((await readSmallBody(body(['abc', 'de']), 5)).toString(), 'abcde');
  const stream = body(['abc', 'def', 'never read']);
  await t.throwsAsync(readSmallBody(stream, 5), { instanceOf: PayloadTooLargeError });
  t.true(stream.stream.destroyed, 'the rest is not read');
});
