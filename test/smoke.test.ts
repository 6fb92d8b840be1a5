import test from 'ava';
const n: number = 1 + 1;
test('type stripping works', (t) => { t.is(n, 2); });
