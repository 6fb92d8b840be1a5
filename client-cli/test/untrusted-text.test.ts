import test from 'ava';
import { hasControlCharacters, printable, printableLine } from '../src/client/untrusted-text.ts';

test('printable shows terminal controls and text-reordering invisible characters as \\u escapes, and leaves other text as it is', (t) => {
  // A right-to-left override makes `GP1‮62X` read as `GP1X26` on screen: another mailbox.
  t.is(printable('GP1\u202e62X'), 'GP1\\u202e62X');
  for (const hidden of ['\u0007', '\u001b', '\u009b', '\u061c', '\u200b', '\u200e', '\u200f', '\u2028', '\u2029', '\u202a', '\u202d', '\u2060', '\u2066', '\u2069', '\ufeff']) {
    const escaped = `\\u${hidden.charCodeAt(0).toString(16).padStart(4, '0')}`;
    t.is(printable(`a${hidden}b`), `a${escaped}b`, escaped);
    t.true(hasControlCharacters(`a${hidden}b`), escaped);
  }
  // Tab and line feed are printable's to keep and printableLine's to escape.
  t.is(printable('a\tb\nc'), 'a\tb\nc');
  t.is(printableLine('a\tb\nc'), 'a\\tb\\nc');
  // Letters of any script, and the joiners some scripts need, stay.
  for (const text of ['Hôpital Saint-Éloi', 'Ysbyty Gwynedd', 'مستشفى', 'क्‍ष', 'می‌خواهم', '👩‍⚕️ GP']) {
    t.is(printable(text), text);
    t.false(hasControlCharacters(text), text);
  }
});
