import test from 'ava';
import { PasswordCipher } from '../src/store/password-cipher.ts';

test('passwords round-trip, never appear in what is stored, and differ on every encryption', (t) => {
  const cipher = new PasswordCipher('server secret');
  const first = cipher.encrypt('pa55word');
  const second = cipher.encrypt('pa55word');
  t.not(first, second);
  t.false(first.includes('pa55word'));
  t.is(cipher.decrypt(first), 'pa55word');
  t.is(cipher.decrypt(second), 'pa55word');
});

test('another secret cannot read them, and tampering is detected', (t) => {
  const stored = new PasswordCipher('server secret').encrypt('pa55word');
  t.throws(() => new PasswordCipher('other secret').decrypt(stored));
  const tampered = stored.slice(0, -4) + (stored.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  t.throws(() => new PasswordCipher('server secret').decrypt(tampered));
  t.throws(() => new PasswordCipher('server secret').decrypt('plain text'), { message: /not encrypted/ });
});

test('a remembered decryption never vouches for another stored value: tampering is still caught', (t) => {
  const cipher = new PasswordCipher('server secret');
  const stored = cipher.encrypt('pa55word');
  t.is(cipher.decrypt(stored), 'pa55word');
  t.is(cipher.decrypt(stored), 'pa55word');
  const bytes = Buffer.from(stored.slice(3), 'base64');
  bytes[bytes.length - 1]! ^= 1;
  t.throws(() => cipher.decrypt(`v1:${bytes.toString('base64')}`));
});

test('a key check value is recognised by the secret that made it only', (t) => {
  const check = new PasswordCipher('server secret').keyCheckValue();
  t.true(new PasswordCipher('server secret').isKeyCheckValue(check));
  t.false(new PasswordCipher('other secret').isKeyCheckValue(check));
  t.false(new PasswordCipher('server secret').isKeyCheckValue(new PasswordCipher('server secret').encrypt('a password')));
});
