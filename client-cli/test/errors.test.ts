import test from 'ava';
import { MeshConnectionError, parseErrorBody } from '../src/client/errors.ts';
import { errorLine } from '../src/commands/context.ts';

test('a v2 error body gives code, event, description and ids', (t) => {
  const error = parseErrorBody(
    417,
    JSON.stringify({ message_id: 'M1', internal_id: 'R1', detail: [{ event: 'SEND', code: '12', msg: 'Unregistered to address' }] }),
  );
  t.like(error, { status: 417, code: '12', event: 'SEND', description: 'Unregistered to address', messageId: 'M1', internalId: 'R1' });
  t.is(errorLine(error), 'meshbox: Unregistered to address (HTTP 417, MESH code 12)');
});

test("a MESH code that is a phrase (MESH's own for a message gone) is quoted, so it reads as the code", (t) => {
  const error = parseErrorBody(410, JSON.stringify({ detail: [{ event: 'SEND', code: 'Message already accepted', msg: 'Message no longer available for download' }] }));
  t.is(errorLine(error), 'meshbox: Message no longer available for download (HTTP 410, MESH code "Message already accepted")');
});

test("a server's description or code of any length is cut to a line's worth, saying how much was left out", (t) => {
  const error = parseErrorBody(400, JSON.stringify({ detail: [{ event: 'SEND', code: 'C'.repeat(10_000), msg: 'd'.repeat(100_000) }] }));
  t.is(error.description, `${'d'.repeat(500)}… (99500 more characters)`);
  t.is(error.code, `${'C'.repeat(100)}… (9900 more characters)`);
  t.true(errorLine(error).length < 700);
  const v1 = parseErrorBody(404, JSON.stringify({ errorDescription: 'e'.repeat(501) }));
  t.is(v1.description, `${'e'.repeat(500)}… (1 more character)`);
  t.is(parseErrorBody(404, JSON.stringify({ errorDescription: 'e'.repeat(500) })).description, 'e'.repeat(500));
});

test('a framework\'s own error body, a detail that is a string (FastAPI\'s for a path it has no route for), reads as that text', (t) => {
  t.is(errorLine(parseErrorBody(404, JSON.stringify({ detail: 'Not Found' }))), 'meshbox: Not Found (HTTP 404)');
  t.is(errorLine(parseErrorBody(405, JSON.stringify({ detail: 'Method Not Allowed' }))), 'meshbox: Method Not Allowed (HTTP 405)');
});

test('a v1 error body gives the same fields', (t) => {
  const error = parseErrorBody(
    404,
    JSON.stringify({ messageID: 'M2', errorEvent: 'RECEIVE', errorCode: '20', errorDescription: 'Message does not exist' }),
  );
  t.like(error, { status: 404, code: '20', event: 'RECEIVE', description: 'Message does not exist', messageId: 'M2' });
});

test("MESH's 400 for a request its validation refuses (loc, msg, type: the specification's HTTPValidationError) names the header refused, for each one", (t) => {
  // As the sandbox sends it (views/error.py, get_validation_error_response): pydantic's errors, then the body.
  const tooLong = parseErrorBody(
    400,
    JSON.stringify({
      detail: [{ type: 'string_too_long', loc: ['header', 'mex-subject'], msg: 'String should have at most 500 characters', input: 'x'.repeat(501), ctx: { max_length: 500 } }],
      body: null,
    }),
  );
  t.like(tooLong, { status: 400, code: undefined, description: 'header mex-subject: String should have at most 500 characters' });
  t.is(errorLine(tooLong), 'meshbox: header mex-subject: String should have at most 500 characters (HTTP 400)');
  const missing = parseErrorBody(
    400,
    JSON.stringify({
      detail: [
        { type: 'missing', loc: ['header', 'mex-to'], msg: 'Field required', input: null },
        { type: 'missing', loc: ['header', 'mex-workflowid'], msg: 'Field required', input: null },
      ],
    }),
  );
  t.is(missing.description, 'header mex-to: Field required; header mex-workflowid: Field required');
  const many = parseErrorBody(400, JSON.stringify({ detail: Array.from({ length: 12 }, (_, index) => ({ loc: ['query', `q${index}`], msg: 'bad', type: 'x' })) }));
  t.is(many.description, 'query q0: bad; query q1: bad; query q2: bad; and 9 more', 'a long list is cut short');
});

test("an error body with no MESH detail, only a message and the server's internal id (the sandbox's answer to a failure of its own), reads as its message, keeping the id to give support", (t) => {
  const failed = parseErrorBody(500, JSON.stringify({ internal_id: '20220228174323222_ABCDEF', message: 'An internal error occurred.\n\nPlease contact support.' }));
  t.like(failed, { status: 500, code: undefined, internalId: '20220228174323222_ABCDEF' });
  t.is(errorLine(failed), 'meshbox: An internal error occurred. Please contact support. (internal id 20220228174323222_ABCDEF) (HTTP 500)');
  // A finished message's chunk (423): no internal id to give.
  t.is(errorLine(parseErrorBody(423, JSON.stringify({ message: 'An internal error occurred.\n\nPlease contact support.' }))), 'meshbox: An internal error occurred. Please contact support. (HTTP 423)');
});

test('a body that is not MESH JSON gives one line: the reason phrase, and the text itself only when it is short plain text', (t) => {
  const gatewayPage = [
    '<html>',
    '<head><title>502 Bad Gateway</title></head>',
    '<body>',
    '<center><h1>502 Bad Gateway</h1></center>',
    '<hr><center>nginx</center>',
    '</body>',
    '</html>',
  ].join('\r\n');
  const html = parseErrorBody(502, gatewayPage);
  t.like(html, { status: 502, code: undefined, description: 'Bad Gateway' });
  t.is(errorLine(html), 'meshbox: Bad Gateway (HTTP 502)');
  t.is(errorLine(parseErrorBody(504, '  upstream timed out\n')), 'meshbox: Gateway Timeout: upstream timed out (HTTP 504)');
  t.is(errorLine(parseErrorBody(503, 'Service Unavailable')), 'meshbox: Service Unavailable (HTTP 503)', 'the phrase is not said twice');
  t.is(errorLine(parseErrorBody(500, 'x'.repeat(201))), 'meshbox: Internal Server Error (HTTP 500)', 'a long text is left out');
  t.is(errorLine(parseErrorBody(410, '')), 'meshbox: Gone (HTTP 410)');
});

test('a new connection closed unanswered says the server may be refusing the certificate; a kept-alive one closed, or a refused connection, does not', (t) => {
  const reset = () => Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
  t.regex(errorLine(new MeshConnectionError('https://mesh.example', reset(), { newConnection: true })), /^meshbox: the connection to https:\/\/mesh\.example broke: socket hang up \(.*may be refusing this certificate \(revoked, expired, or not from its CA/);
  t.is(errorLine(new MeshConnectionError('https://mesh.example', reset(), { newConnection: false })), 'meshbox: the connection to https://mesh.example broke: socket hang up');
  const stalled = Object.assign(new Error('no activity for 2000 ms'), { code: 'ETIMEDOUT' });
  t.is(errorLine(new MeshConnectionError('https://mesh.example', stalled)), 'meshbox: no answer from https://mesh.example: no activity for 2000 ms');
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
  t.false(errorLine(new MeshConnectionError('https://mesh.example', refused, { newConnection: true })).includes('certificate'));
});

test("a server certificate refused by the client is said to be that: another name (check --url), out of its dates, or not vouched for by --ca", (t) => {
  const failing = (code: string, message: string) => new MeshConnectionError('https://mesh.example', Object.assign(new Error(message), { code }));
  t.is(
    errorLine(failing('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames")),
    "meshbox: the server at https://mesh.example has a certificate for another name (Hostname/IP does not match certificate's altnames): check --url",
  );
  for (const code of ['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']) {
    t.is(errorLine(failing(code, 'certificate has expired')), 'meshbox: the server at https://mesh.example has a certificate out of its dates (certificate has expired)', code);
  }
  t.regex(errorLine(failing('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate')), /does not vouch for \(unable to verify the first certificate\): check --ca/);
});
