import test from 'ava';
import { RetrySchedule, waitAfterPasses } from '../src/transfer/polling.ts';

// State only: an hour-long interval means nothing here waits out its backoff during the test.
const HOUR = 60 * 60 * 1000;

test('a failed item waits out its backoff; one handled, or no longer present, is forgotten', (t) => {
  const retries = new RetrySchedule(HOUR);
  t.false(retries.waiting('a'));
  retries.failed('a');
  retries.failed('b');
  retries.failed('c');
  t.true(retries.waiting('a'));

  retries.forget('a');
  t.false(retries.waiting('a'), 'handled: tried at once next time');

  // The inbox (or folder) now lists only c: b was acknowledged elsewhere, or removed.
  retries.keepOnly(['c']);
  t.false(retries.waiting('b'));
  t.true(retries.waiting('c'));
});

test('a watch whose passes keep failing waits longer between them, up to five minutes, and its interval again once one succeeds', (t) => {
  const MINUTE = 60_000;
  t.deepEqual([0, 1, 2, 3, 4, 5, 9].map((failures) => waitAfterPasses(MINUTE, failures) / MINUTE), [1, 1, 2, 4, 5, 5, 5]);
  t.is(waitAfterPasses(10 * MINUTE, 3), 10 * MINUTE, 'never sooner than the interval asked for');
});
