import test from 'ava';
import { MESSAGE_ID_PATTERN, messageIdTime, newMessageId, normaliseMessageId } from '../src/protocol/message-id.ts';

test('ids have the MESH shape, carry the given second, and differ across many pool refills', (t) => {
  const at = new Date('2026-11-29T12:34:56.789Z');
  const ids = Array.from({ length: 20_000 }, () => newMessageId(at));
  for (const id of ids.slice(0, 50)) {
    t.regex(id, MESSAGE_ID_PATTERN);
    t.true(id.startsWith('20261129123456'), id);
  }
  t.is(new Set(ids).size, ids.length, 'no two alike');
  t.true(new Set(ids.map((id) => id.slice(-6))).size > 19_000, 'the suffixes spread');
  t.true(new Set(ids.map((id) => id.slice(14, 20))).size > 19_000, 'so do the microseconds');
});

test('ids are case-insensitive on the wire; anything else is not an id', (t) => {
  t.is(normaliseMessageId('20261129123456000001_abcdef'), '20261129123456000001_ABCDEF');
  // 'ﬀ' (one letter) upper-cases to FF: a look-alike path is no id.
  t.is('20261129123456000001_ABCDﬀ'.toUpperCase(), '20261129123456000001_ABCDFF', 'JavaScript upper-cases it to an id');
  for (const bad of ['', '20261129123456000001', '20261129123456000001_ABCDEG', '../etc/passwd', '20261129123456000001_ABCDEF ', '20261129123456000001_ABCDﬀ']) {
    t.is(normaliseMessageId(bad), undefined, bad);
  }
});

test("an id's time is the second it was made in, by its digits; an id whose digits are no time has none", (t) => {
  t.deepEqual(messageIdTime('20200529155357895317_3573F8'), new Date('2020-05-29T15:53:57.000Z'), "MESH's own, its microseconds left aside");
  t.deepEqual(messageIdTime(newMessageId(new Date('2026-11-29T12:34:56.789Z'))), new Date('2026-11-29T12:34:56.000Z'));
  for (const timeless of ['20261399000000000000_ABCDEF', '20260230120000000000_ABCDEF', '20261129250000000000_ABCDEF']) t.is(messageIdTime(timeless), undefined, timeless);
});
