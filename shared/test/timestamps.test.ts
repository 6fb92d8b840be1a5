import test from 'ava';
import fc from 'fast-check';
import { formatTokenTimestamp, parseTokenTimestamp } from '../src/protocol/auth-token.ts';
import { compactUtcSeconds, readMeshTime } from '../src/protocol/timestamps.ts';

// A machine whose local time is not UTC: a MESH time read as local time would be hours out.
process.env.TZ = 'America/New_York';

test("MESH's times, which name no zone, are read as UTC, not as this machine's local time; a time with a zone is read in it", (t) => {
  t.not(new Date('2020-06-01T12:21:52').toISOString(), '2020-06-01T12:21:52.000Z', "JavaScript's own reading of a zoneless time is local time");
  const read = (text: string) => readMeshTime(text)?.toISOString();
  // The specification's tracking example (v2's expiry_time, upload_timestamp and status_timestamp; v1's compact times).
  t.is(read('20200606122153'), '2020-06-06T12:21:53.000Z');
  t.is(read('2020-06-01T12:21:52'), '2020-06-01T12:21:52.000Z');
  // The sandbox's (Python's isoformat of a naive UTC time), to the microsecond.
  t.is(read('2022-11-15T14:50:17.923288'), '2022-11-15T14:50:17.923Z');
  t.is(read('2022-11-15 14:50'), '2022-11-15T14:50:00.000Z');
  // meshbox's own, and others that say their zone.
  t.is(read('2026-01-01T12:00:00.000Z'), '2026-01-01T12:00:00.000Z');
  t.is(read('2026-01-01T12:00:00+01:00'), '2026-01-01T11:00:00.000Z');
  t.is(read('2026-01-01T12:00:00-0530'), '2026-01-01T17:30:00.000Z');
});

test('text that is no time, or no real one, is not read as one', (t) => {
  for (const text of ['', 'soon', '2020060112215', '202006011221520', '20201301000000', '2026-02-30T00:00:00', '2026-01-01T24:00:00', '2026-01-01T12:00:60', '2026-01-01', '2026-01-01T12:00:00 GMT', '2026-01-01T12:00:00+99:99', '2026-01-01T12:00:00-15:00', '2026-01-01T12:00:00+01:60']) {
    t.is(readMeshTime(text), undefined, text);
  }
});

test("a token's timestamp is read as the minute it names, and one that names no real minute is refused", (t) => {
  fc.assert(
    fc.property(fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2099-12-31T23:59:59Z'), noInvalidDate: true }), (at) => {
      const minute = new Date(Math.floor(at.getTime() / 60_000) * 60_000);
      t.is(parseTokenTimestamp(formatTokenTimestamp(at))?.getTime(), minute.getTime());
    }),
  );
  for (const text of ['202613010000', '202602300000', '202502290000', '202601012400', '202601011260', '202600011200', '20260101120', 'x02601011200']) {
    t.is(parseTokenTimestamp(text), undefined, text);
  }
  t.is(parseTokenTimestamp('202402291200')?.toISOString(), '2024-02-29T12:00:00.000Z');
});

test('compact times are right for any sequence of times, however many fall in one second', (t) => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2100, 0, 1) }), { minLength: 1, maxLength: 20 }), (times) => {
      for (const time of [...times, ...times.map((each) => each + 1), ...times.map((each) => each - 1)]) {
        t.is(compactUtcSeconds(new Date(time)), new Date(time).toISOString().slice(0, 19).replace(/\D/g, ''));
      }
    }),
  );
});
