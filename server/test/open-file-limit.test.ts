import test from 'ava';
import { connectionsFitOpenFileLimit, DESCRIPTORS_BESIDE_CONNECTIONS, openFileLimit } from '../src/open-file-limit.ts';

const limits = (soft: string, hard: string) =>
  ['Limit                     Soft Limit           Hard Limit           Units     ', `Max open files            ${soft.padEnd(21)}${hard.padEnd(21)}files     `].join('\n');

test("the open-file limit is read from /proc's limits: the soft one, unlimited as infinity, none where it says nothing", (t) => {
  t.is(openFileLimit(limits('1024', '524288')), 1024);
  t.is(openFileLimit(limits('unlimited', 'unlimited')), Number.POSITIVE_INFINITY);
  t.is(openFileLimit(''), undefined);
  // This process's own, on Linux: Node has raised the soft limit to the hard one.
  t.true((openFileLimit() ?? 1) > 0);
});

test('a connection limit fits when the backends keep their descriptors beside it', (t) => {
  t.true(connectionsFitOpenFileLimit(10_000, 10_000 + DESCRIPTORS_BESIDE_CONNECTIONS));
  t.false(connectionsFitOpenFileLimit(10_000, 10_000));
  t.false(connectionsFitOpenFileLimit(10_000, 1024));
  t.true(connectionsFitOpenFileLimit(10_000, Number.POSITIVE_INFINITY));
  t.true(connectionsFitOpenFileLimit(10_000, undefined), 'unknown: nothing to warn of');
});
