import test from 'ava';
import { dailyHandshake } from '../src/commands/mailbox-validation.ts';
import { pollUntilStopped, RetrySchedule, waitAfterPasses } from '../src/transfer/polling.ts';

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

test('an item told to wait a while waits that long, however often it failed before, and no longer', (t) => {
  const retries = new RetrySchedule(HOUR);
  for (let i = 0; i < 5; i++) retries.failed('in doubt');
  retries.holdFor('in doubt', HOUR);
  t.true(retries.waiting('in doubt'));
  retries.holdFor('in doubt', -1);
  t.false(retries.waiting('in doubt'), 'due: its backoff of five failures does not hold it');
});

test("a failed item's backoff is timed by the monotonic clock: the wall clock set back a month meanwhile (NTP mending a clock a month fast) does not hold it a month", async (t) => {
  const retries = new RetrySchedule(50);
  retries.failed('message');
  const wallClock = Date.now;
  const monthBack = wallClock() - 30 * 24 * HOUR;
  Date.now = () => monthBack;
  try {
    t.true(retries.waiting('message'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    t.false(retries.waiting('message'), 'due after its 50 ms backoff');
  } finally {
    Date.now = wallClock;
  }
});

test('a watch whose passes keep failing waits longer between them, up to five minutes, and its interval again once one succeeds', (t) => {
  const MINUTE = 60_000;
  t.deepEqual([0, 1, 2, 3, 4, 5, 9].map((failures) => waitAfterPasses(MINUTE, failures) / MINUTE), [1, 1, 2, 4, 5, 5, 5]);
  t.is(waitAfterPasses(10 * MINUTE, 3), 10 * MINUTE, 'never sooner than the interval asked for');
});

test('a watch validates its mailbox before its first pass and then once a day, warning when the certificate nears its end; a failed handshake is the pass\'s failure', async (t) => {
  let clock = Date.parse('2026-11-30T08:00:00Z');
  const handshakes: number[] = [];
  let refuse = false;
  const client = {
    certificateNotAfter: new Date(clock + 40 * 24 * HOUR),
    handshake: async () => {
      handshakes.push(clock);
      if (refuse) throw new Error('HTTP 403');
    },
  };
  const warnings: string[] = [];
  const due = dailyHandshake(client, (line) => warnings.push(line), () => new Date(clock));
  await due();
  clock += 23 * HOUR;
  await due();
  t.is(handshakes.length, 1, 'not again within the day');
  t.deepEqual(warnings, [], '40 days left: nothing to say');
  clock += 2 * HOUR;
  refuse = true;
  await t.throwsAsync(due(), { message: 'the mailbox validation (MESH handshake) failed: HTTP 403' });
  refuse = false;
  clock += HOUR;
  await due();
  t.is(handshakes.length, 3, 'a refused handshake is tried again before the next pass');
  clock += 11 * 24 * HOUR;
  await due();
  t.deepEqual(warnings, ['meshbox: warning: the certificate expires in 28 days: ask your MESH administrator for a new one now (meshbox cert request makes the request)']);

  // In the watch loop: before every pass, and a failure of it counts as the pass's.
  const stop = new AbortController();
  const order: string[] = [];
  const failed: unknown[] = [];
  await pollUntilStopped(
    async () => {
      order.push('pass');
      if (order.length >= 4) stop.abort();
    },
    {
      intervalMs: 1,
      signal: stop.signal,
      onPassFailed: (error) => failed.push(error),
      beforePass: async () => {
        order.push('before');
        if (order.length === 1) throw new Error('server away');
      },
    },
  );
  t.deepEqual(order, ['before', 'before', 'pass', 'before', 'pass']);
  t.is(failed.length, 1);
});

test('a clock set back (NTP correcting a wrong RTC, a manual change) does not put off the daily handshake for as long as it went back', async (t) => {
  let clock = Date.parse('2026-11-30T08:00:00Z');
  let handshakes = 0;
  const due = dailyHandshake({ certificateNotAfter: undefined, handshake: async () => void handshakes++ }, () => undefined, () => new Date(clock));
  await due();
  // The machine booted with its clock a month ahead; NTP puts it right an hour later.
  clock -= 30 * 24 * HOUR;
  for (let hours = 0; hours < 48; hours++) {
    clock += HOUR;
    await due();
  }
  t.true(handshakes >= 2, `${handshakes} handshake(s) in the two days after the clock went back a month`);
});
