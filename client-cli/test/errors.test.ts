import test from 'ava';
import { parseErrorBody } from '../src/client/errors.ts';
import { errorLine } from '../src/commands/context.ts';

test('a v2 error body gives code, event, description and ids', (t) => {
  const error = parseErrorBody(
    417,
    JSON.stringify({ message_id: 'M1', internal_id: 'R1', detail: [{ event: 'SEND', code: '12', msg: 'Unregistered to address' }] }),
  );
  t.like(error, { status: 417, code: '12', event: 'SEND', description: 'Unregistered to address', messageId: 'M1', internalId: 'R1' });
  t.is(errorLine(error), 'meshbox: Unregistered to address (HTTP 417, MESH code 12)');
});

test('a v1 error body gives the same fields', (t) => {
  const error = parseErrorBody(
    404,
    JSON.stringify({ messageID: 'M2', errorEvent: 'RECEIVE', errorCode: '20', errorDescription: 'Message does not exist' }),
  );
  t.like(error, { status: 404, code: '20', event: 'RECEIVE', description: 'Message does not exist', messageId: 'M2' });
});

test('a body that is not MESH JSON becomes the description; an empty one the status text', (t) => {
  t.like(parseErrorBody(502, '<html>bad gateway</html>'), { status: 502, code: undefined, description: '<html>bad gateway</html>' });
  const empty = parseErrorBody(410, '');
  t.like(empty, { status: 410, code: undefined, description: 'Gone' });
  t.is(errorLine(empty), 'meshbox: Gone (HTTP 410)');
});
