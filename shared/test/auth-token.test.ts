import test from 'ava';
import { buildAuthorizationHeader, parseAuthorizationHeader, tokenHmacMatches } from '../src/protocol/index.ts';

// A token made outside meshbox, as MESH defines it: the HMAC-SHA256, keyed by the shared key, of
// `mailbox:nonce:nonce count:password:timestamp` (the same as NHS's mesh-client makes, and as
//   printf '%s' 'MAILBOX01:4a1b2c3d-0000-4000-8000-000000000000:1:password:202001011200' | openssl dgst -sha256 -hmac TestKey
// gives). Tested only against meshbox's own builder, the server's check could drift from MESH with every test green.
const MESH_TOKEN = 'NHSMESH MAILBOX01:4a1b2c3d-0000-4000-8000-000000000000:1:202001011200:e457ce4ab77a40a3f6a350fdf71b9547382252fa4575b87bbcdb3f78ac70b14f';

test("a token made as MESH specifies is accepted with its mailbox's password, and refused with another; meshbox's CLI makes the very same token", (t) => {
  const token = parseAuthorizationHeader(MESH_TOKEN);
  t.truthy(token);
  t.true(tokenHmacMatches('TestKey', token!, 'password'));
  t.false(tokenHmacMatches('TestKey', token!, 'passwore'));
  t.false(tokenHmacMatches('OtherKey', token!, 'password'));
  const built = buildAuthorizationHeader({
    mailboxId: 'MAILBOX01',
    password: 'password',
    sharedKey: 'TestKey',
    nonce: '4a1b2c3d-0000-4000-8000-000000000000',
    nonceCount: 1,
    at: new Date(Date.UTC(2020, 0, 1, 12, 0)),
  });
  t.is(built, MESH_TOKEN);
});
