import test from 'ava';
import { KeptAnswers } from '../src/store/kept-answers.ts';

/** A reader that counts its reads and answers `size` items. */
function reader(size: number) {
  const reader = {
    reads: 0,
    read: async () => {
      reader.reads += 1;
      return Array.from({ length: size }, (_, n) => n);
    },
  };
  return reader;
}

test('an answer is kept while its version holds, and read again at a new one', async (t) => {
  const kept = new KeptAnswers<number>();
  const big = reader(500);
  const first = await kept.answer('big', '1', big.read);
  t.is(await kept.answer('big', '1', big.read), first, 'the same answer, not read again');
  t.is(big.reads, 1);
  await kept.answer('big', '2', big.read);
  t.is(big.reads, 2);
});

test('asked again while it is being read, an answer is read once', async (t) => {
  const kept = new KeptAnswers<number>();
  const big = reader(500);
  const answers = await Promise.all([kept.answer('big', '1', big.read), kept.answer('big', '1', big.read), kept.answer('big', '1', big.read)]);
  t.is(big.reads, 1);
  t.is(answers[0], answers[2]);
});

test('many small answers (made-up queries, say) do not push out a large one', async (t) => {
  const kept = new KeptAnswers<number>();
  const big = reader(20_000);
  await kept.answer('national', '1', big.read);
  const small = reader(0);
  for (let n = 0; n < 5_000; n++) await kept.answer(`made-up-${n}`, '1', small.read);
  await kept.answer('national', '1', big.read);
  t.is(big.reads, 1, 'the large answer is still kept');
});

test('a read that fails is not kept: the next ask reads again', async (t) => {
  const kept = new KeptAnswers<number>();
  let reads = 0;
  const failing = async (): Promise<number[]> => {
    reads += 1;
    throw new Error('Redis away');
  };
  await t.throwsAsync(kept.answer('big', '1', failing), { message: 'Redis away' });
  await t.throwsAsync(kept.answer('big', '1', failing), { message: 'Redis away' });
  t.is(reads, 2);
});
