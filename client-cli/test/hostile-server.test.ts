import { mkdir, mkdtemp, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import test from 'ava';
import type { TestServer } from '../../test/support/harness.ts';
import { safeFileName } from '../src/transfer/download.ts';
import { type CliResult, type MailboxFiles, runInProcess, savedIn } from './support/cli-fixture.ts';
import { prepareScriptedSetting, withFakeServer } from './support/fake-server.ts';

// What the CLI does with answers a broken, misconfigured or hostile server gives: nothing saved,
// moved or acknowledged on their strength, and nothing of them reaches the terminal as control codes.

const MESSAGE_ID = '20260101000000000000_ABC123';

let server: TestServer;
let work: string;
let mailbox: MailboxFiles;
prepareScriptedSetting(test, 'meshbox-hostile-test-', (setting) => ({ server, work, mailbox } = setting));

/** Every request the fake server saw, as `METHOD path`. */
type Answer = (request: IncomingMessage, response: ServerResponse) => void;

async function against(answer: Answer, args: readonly string[], cwd: string): Promise<CliResult & { readonly requests: readonly string[] }> {
  const requests: string[] = [];
  const result = await withFakeServer(
    server.ca,
    (request, _body, response) => {
      requests.push(`${request.method} ${request.url}`);
      answer(request, response);
    },
    (origin) => runInProcess(['--profile', mailbox.profile, '--url', origin, ...args], { cwd }),
  );
  return { ...result, requests };
}

function json(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

function chunk(response: ServerResponse, status: number, headers: Record<string, string>, body = 'part1\n'): void {
  response.writeHead(status, { 'content-type': 'application/octet-stream', 'mex-messageid': MESSAGE_ID, ...headers }).end(body);
}

async function folder(): Promise<string> {
  return mkdtemp(join(work, 'run-'));
}

test('dispatch refuses a message id from the server that is not one: the file is neither moved nor its receipt written outside the outbox', async (t) => {
  const root = await folder();
  const outbox = join(root, 'outbox');
  await mkdir(outbox);
  await writeFile(join(outbox, 'report.csv'), 'a,b\n');
  // Settled: dispatch leaves a file written in the last moments for its writer to finish.
  const minuteAgo = new Date(Date.now() - 60_000);
  await utimes(join(outbox, 'report.csv'), minuteAgo, minuteAgo);
  const result = await against(
    (request, response) => (request.method === 'POST' ? json(response, 202, { message_id: '../../escaped' }) : json(response, 404, {})),
    ['dispatch', outbox, '--to', 'X26OT001', '--workflow', 'WF', '--json'],
    root,
  );
  t.regex(result.stderr, /what the server returned as the new message id is not a message id: "\.\.\/\.\.\/escaped"/);
  t.deepEqual(await readdir(root), ['outbox']);
  t.deepEqual(await readdir(join(outbox, 'sent')).catch(() => []), []);
  t.true((await readdir(outbox)).includes('report.csv'), 'the file waits in the outbox');
});

test('a redirect is an error naming where it points: download saves nothing', async (t) => {
  const cwd = await folder();
  const result = await against(
    (_request, response) => response.writeHead(302, { location: 'https://login.example/sso', 'content-type': 'text/html' }).end('<html>Found</html>'),
    ['download', MESSAGE_ID],
    cwd,
  );
  t.is(result.code, 1);
  t.regex(result.stderr, /^meshbox: the server redirected to https:\/\/login\.example\/sso: a MESH server never does; check the server URL \(HTTP 302\)/);
  t.deepEqual(await readdir(cwd), []);
});

test('receive saves and acknowledges nothing on a redirected download', async (t) => {
  const cwd = await folder();
  const result = await against(
    (request, response) =>
      request.url?.includes('/inbox?') || request.url?.endsWith('/inbox')
        ? json(response, 200, { messages: [MESSAGE_ID] })
        : response.writeHead(302, { location: 'https://login.example/sso' }).end(),
    ['receive', '.'],
    cwd,
  );
  t.is(result.code, 1);
  t.false(result.requests.some((request) => request.startsWith('PUT')), result.requests.join('\n'));
  t.deepEqual((await readdir(cwd)).filter((name) => !name.startsWith('.meshbox-')), []);
});

for (const [lie, headers, status, expected] of [
  ['two headers disagree on the chunk count', { 'mex-chunk-range': '1:3', 'mex-total-chunks': '1' }, 206, /contradicts itself: 1 chunks by mex-Total-Chunks, 3 by mex-Chunk-Range/],
  ['206 for the only chunk', { 'mex-chunk-range': '1:1', 'mex-total-chunks': '1' }, 206, /chunk 1 of 1 came with HTTP 206, not 200 \(which says more chunks follow\)/],
  ['200 for chunk 1 of 3', { 'mex-chunk-range': '1:3', 'mex-total-chunks': '3' }, 200, /chunk 1 of 3 came with HTTP 200, not 206/],
  ['204 for a message', { 'mex-chunk-range': '1:1' }, 204, /chunk 1 of 1 came with HTTP 204, not 200/],
  ['a trillion chunks', { 'mex-chunk-range': '1:1000000000000', 'mex-total-chunks': '1000000000000' }, 206, /says the message has 1000000000000 chunks, more than any message has/],
  ['more chunks than a number holds', { 'mex-total-chunks': '9'.repeat(400) }, 206, /more than any message has/],
] as const) {
  test(`a download whose chunk count is a lie (${lie}) is refused, and nothing saved`, async (t) => {
    const cwd = await folder();
    const result = await against((_request, response) => chunk(response, status, headers, status === 204 ? '' : 'part1\n'), ['download', MESSAGE_ID], cwd);
    t.is(result.code, 1);
    t.regex(result.stderr, expected);
    t.deepEqual(await readdir(cwd), []);
  });
}

test('a received message whose chunk 1 lies about the count is not acknowledged', async (t) => {
  const cwd = await folder();
  const result = await against(
    (request, response) =>
      request.url?.endsWith('/inbox') ? json(response, 200, { messages: [MESSAGE_ID] }) : chunk(response, 206, { 'mex-chunk-range': '1:3', 'mex-total-chunks': '1' }),
    ['receive', '.'],
    cwd,
  );
  t.is(result.code, 1);
  t.regex(result.stderr, /contradicts itself/);
  t.false(result.requests.some((request) => request.startsWith('PUT')));
});

test('a chunk that names another message than the one asked for is refused: download saves nothing, receive acknowledges nothing', async (t) => {
  const OTHER = '20260101000000000000_FFF999';
  // HEAD (receive's look first) tells the truth; the chunks are another message's.
  const answer: Answer = (request, response) =>
    request.url?.endsWith('/inbox')
      ? json(response, 200, { messages: [MESSAGE_ID] })
      : chunk(response, 200, request.method === 'HEAD' ? {} : { 'mex-messageid': OTHER, 'mex-chunk-range': '1:1', 'mex-filename': 'result.txt' });
  for (const args of [['download', MESSAGE_ID], ['receive', '.']]) {
    const cwd = await folder();
    const result = await against(answer, args, cwd);
    t.is(result.code, 1, args[0]);
    t.regex(result.stderr, new RegExp(`asked for message ${MESSAGE_ID}, the server sent chunk 1 of message ${OTHER}`), args[0]);
    t.deepEqual(await savedIn(cwd), [], `${args[0]}: nothing saved`);
    t.false(result.requests.some((request) => request.startsWith('PUT')), `${args[0]}: nothing acknowledged`);
  }
});

test('an answer that names no message (an inbox listing, say) is no download: download saves nothing, receive acknowledges nothing', async (t) => {
  // What a path collapsed onto the inbox would get: the listing, without any mex-MessageID.
  const answer: Answer = (request, response) =>
    request.method === 'HEAD' ? chunk(response, 200, { 'mex-chunk-range': '1:1' }, '') : json(response, 200, { messages: [MESSAGE_ID] });
  for (const args of [['download', MESSAGE_ID], ['receive', '.']]) {
    const cwd = await folder();
    const result = await against(answer, args, cwd);
    t.is(result.code, 1, args[0]);
    t.regex(result.stderr, new RegExp(`asked for message ${MESSAGE_ID}, the server answered with no message id`), args[0]);
    t.deepEqual(await savedIn(cwd), [], `${args[0]}: nothing saved`);
    t.false(result.requests.some((request) => request.startsWith('PUT')), `${args[0]}: nothing acknowledged`);
  }
});

test('a message id that is none (empty, . or ..: a path onto the inbox or the mailbox) is a usage error, and nothing is asked of the server', async (t) => {
  const answer: Answer = (_request, response) => json(response, 200, { messages: [MESSAGE_ID] });
  for (const args of [['download', ''], ['download', '.'], ['ack', '..'], ['track', '.'], ['send', 'x.txt', '--resume', ''], ['download', 'a/b']]) {
    const cwd = await folder();
    const result = await against(answer, args, cwd);
    t.is(result.code, 2, args.join(' '));
    t.regex(result.stderr, /Give a message id/, args.join(' '));
    t.deepEqual(result.requests, [], `${args.join(' ')}: no request`);
    t.deepEqual(await readdir(cwd), [], `${args.join(' ')}: nothing saved`);
  }
});

test('a message whose HEAD and download disagree on its type (report or data) is neither saved nor acknowledged by receive', async (t) => {
  for (const [head, get] of [['REPORT', 'DATA'], ['DATA', 'REPORT']]) {
    const cwd = await folder();
    const typed = (type: string) => ({ 'mex-messagetype': type, 'mex-chunk-range': type === 'REPORT' ? '1:0' : '1:1', ...(type === 'REPORT' ? { 'mex-statuscode': '14' } : {}) });
    const result = await against(
      (request, response) =>
        request.url?.endsWith('/inbox')
          ? json(response, 200, { messages: [MESSAGE_ID] })
          : chunk(response, 200, typed(request.method === 'HEAD' ? head! : get!), get === 'REPORT' ? '' : 'part1\n'),
      ['receive', '.'],
      cwd,
    );
    t.is(result.code, 1, `${head} then ${get}`);
    t.regex(result.stderr, new RegExp(`message ${MESSAGE_ID} was described as ${head} and downloaded as ${get}: nothing is saved or acknowledged`));
    t.deepEqual(await savedIn(cwd), [], `${head} then ${get}: nothing saved`);
    t.false(result.requests.some((request) => request.startsWith('PUT')), `${head} then ${get}: nothing acknowledged`);
  }
});

test('a sender\'s file name cannot make a hidden file, an option, or a Windows device (any Windows knows: superscript digits, console names, spaces before an extension)', (t) => {
  t.is(safeFileName('.bashrc'), '_bashrc');
  t.is(safeFileName('..npmrc'), '_npmrc');
  t.is(safeFileName('a/b/.netrc'), '_netrc');
  // Nor an option: `rm *` in the folder would read `-rf` as one.
  t.is(safeFileName('-rf'), '_rf');
  t.is(safeFileName('--checkpoint-action=exec=sh x.sh'), '_-checkpoint-action=exec=sh x.sh');
  t.is(safeFileName('a-b.txt'), 'a-b.txt');
  t.is(safeFileName('NUL.txt'), '_NUL.txt');
  t.is(safeFileName('con'), '_con');
  t.is(safeFileName('COM1'), '_COM1');
  for (const device of ['COM¹.txt', 'lpt³', 'CONIN$', 'conout$.log', 'NUL .txt', 'CLOCK$']) t.is(safeFileName(device), `_${device}`, device);
  t.is(safeFileName('COM10.txt'), 'COM10.txt');
  t.is(safeFileName('console.log'), 'console.log');
  t.is(safeFileName('results.v2.csv'), 'results.v2.csv');
  // Invisible characters that disguise a name: an override turning `exe.txt` round, a zero-width space, a byte order mark.
  t.is(safeFileName('scan\u202etxt.exe'), 'scan_txt.exe');
  t.is(safeFileName('report\u200b.pdf\ufeff'), 'report_.pdf_');
});

test('control codes in what the server says are shown escaped, not sent to the terminal', async (t) => {
  const cwd = await folder();
  const title = '\u001b]0;pwned\u0007';
  const refused = await against((_request, response) => json(response, 403, { detail: [{ code: '02', msg: `denied${title}\u009b2J` }] }), ['count'], cwd);
  t.is(refused.code, 1);
  t.false(/[\u001b\u0007\u009b]/.test(refused.stderr), JSON.stringify(refused.stderr));
  t.true(refused.stderr.includes('denied\\u001b]0;pwned\\u0007\\u009b2J'));
  // A 403 for a message (MESH's sandbox refuses another mailbox's so): the hint names that cause too.
  const notOurs = await against((_request, response) => json(response, 403, { detail: [{ code: '02', msg: 'forbidden' }] }), ['download', MESSAGE_ID, '--quiet'], cwd);
  t.is(notOurs.code, 1);
  t.regex(notOurs.stderr, /check the mailbox id and password.*; for a message, that it is this mailbox's/);
  const listed = await against((_request, response) => json(response, 200, { messages: [`${MESSAGE_ID}\nFAKE_ID`, MESSAGE_ID] }), ['inbox'], cwd);
  t.is(listed.code, 0, listed.stderr);
  t.deepEqual(listed.stdout.split('\n'), [JSON.stringify(`${MESSAGE_ID}\nFAKE_ID`), MESSAGE_ID, '']);
  // Tracking is a row per field: a line break in the server's text makes no row of its own.
  const tracked = await against(
    (_request, response) => json(response, 200, { message_id: MESSAGE_ID, status: 'accepted', status_description: 'waiting\nacknowledged  2026-01-01', subject: 'a\tb' }),
    ['track', MESSAGE_ID],
    cwd,
  );
  t.is(tracked.code, 0, tracked.stderr);
  t.deepEqual(tracked.stdout.trimEnd().split('\n'), [`message  ${MESSAGE_ID}`, 'status   accepted, waiting\\nacknowledged  2026-01-01', 'subject  a\\tb']);
});

test('lookup --ods asks for the ODS code upper-cased and trimmed, as ODS codes are written: a server may compare them as given', async (t) => {
  const found = await against((_request, response) => json(response, 200, { results: [] }), ['lookup', 'WF', '--ods', ' a81001 '], await folder());
  t.deepEqual(found.requests, ['GET /messageexchange/endpointlookup/A81001/WF']);
});

test('--json output escapes C1 controls and text-reordering characters from the server (JSON.stringify leaves them): the same JSON, nothing for the terminal to act on', async (t) => {
  const cwd = await folder();
  const subject = 'urgent\u009b2J \u202eTXE.exe';
  const tracked = await against((_request, response) => json(response, 200, { message_id: MESSAGE_ID, status: 'accepted', subject }), ['track', MESSAGE_ID, '--json'], cwd);
  t.is(tracked.code, 0, tracked.stderr);
  const name = 'GP1\u202e62X \u0085';
  const found = await against((_request, response) => json(response, 200, { results: [{ mailbox_id: 'X26OT001', mailbox_name: name }] }), ['lookup', 'WF', '--json'], cwd);
  t.is(found.code, 0, found.stderr);
  for (const [output, text] of [[tracked.stdout, subject], [found.stdout, name]] as const) {
    t.false(/[\u007f-\u009f\u202e]/.test(output), JSON.stringify(output));
    t.true(JSON.stringify(JSON.parse(output)).includes(JSON.stringify(text).slice(1, -1)), 'the same JSON, read back');
  }
});

test("a sender's subject and file name with C1 control codes (HTTP carries Latin-1) reach the saved <ID>.json escaped: the same JSON, and no control sequence for a terminal that shows it", async (t) => {
  const cwd = await folder();
  const subject = 'urgent\u009b2J\u0085done';
  const result = await against(
    (request, response) =>
      request.url?.endsWith('/inbox')
        ? json(response, 200, { messages: [MESSAGE_ID] })
        : request.method === 'PUT'
          ? json(response, 200, {})
          : chunk(response, 200, { 'mex-messagetype': 'DATA', 'mex-chunk-range': '1:1', 'mex-subject': subject, 'mex-filename': 'scan\u009b.txt' }),
    ['receive', '.'],
    cwd,
  );
  t.is(result.code, 0, result.stderr);
  const text = await readFile(join(cwd, `${MESSAGE_ID}.json`), 'utf8');
  t.false(/[\u007f-\u009f]/.test(text), JSON.stringify(text));
  const described = JSON.parse(text) as { subject: string; fileName: string; mexHeaders: Record<string, string> };
  t.is(described.subject, subject);
  t.is(described.fileName, 'scan\u009b.txt');
  t.is(described.mexHeaders['mex-subject'], subject);
});

test('inbox paging that never ends is stopped with an error', async (t) => {
  const cwd = await folder();
  let page = 0;
  const result = await against(
    (_request, response) => {
      page += 1;
      json(response, 200, { messages: [`ID_${page}`], links: { next: `/messageexchange/${mailbox.mailbox.id}/inbox?page=${page}` } });
    },
    ['inbox'],
    cwd,
  );
  t.is(result.code, 1);
  t.regex(result.stderr, /the server's inbox paging did not end after 2000 pages/);
  t.is(result.requests.length, 2000);
});

test('inbox paging that lists more ids than any inbox holds (pages far over MESH\'s 500) is stopped with an error, not held until memory runs out', async (t) => {
  const cwd = await folder();
  let page = 0;
  const result = await against(
    (_request, response) => {
      page += 1;
      const ids = Array.from({ length: 200_000 }, (_, n) => `${String(page).padStart(8, '0')}_${String(n).padStart(6, '0')}`);
      json(response, 200, { messages: ids, links: { next: `/messageexchange/${mailbox.mailbox.id}/inbox?page=${page}` } });
    },
    ['inbox'],
    cwd,
  );
  t.is(result.code, 1);
  t.regex(result.stderr, /the server's inbox listing holds more than 1000000 message ids/);
  t.is(result.requests.length, 6, 'the page that went over is the last asked for');
});

for (const [command, body, expected] of [
  ['count', { count: 'lots' }, /the server's count is not a number of messages: "lots"/],
  ['count', null, /the server's count is not a number of messages/],
  ['inbox', { messages: 'ABC' }, /not a MESH inbox listing/],
  ['inbox', {}, /not a MESH inbox listing/],
  ['track', { message_id: '20260101000000000000_FFFFFF', status: 'accepted' }, /asked to track message 20260101000000000000_ABC123, the server answered about "20260101000000000000_FFFFFF"/],
  ['track', [], /the server answered about undefined/],
] as const) {
  test(`${command} refuses an answer that is not MESH's: ${JSON.stringify(body)}`, async (t) => {
    const result = await against((_request, response) => json(response, 200, body), command === 'track' ? ['track', MESSAGE_ID] : [command], await folder());
    t.is(result.code, 1);
    t.is(result.stdout, '');
    t.regex(result.stderr, expected);
  });
}

test('an answer that stalls or is cut off part-way says so, not only "aborted"', async (t) => {
  const partial = (response: ServerResponse) => response.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' }).write('{"count":');
  // A timeout a loaded host's handshake and headers stay well within: only the body stalls.
  const stalled = await against((_request, response) => partial(response), ['count', '--timeout', '3'], await folder());
  t.is(stalled.code, 1);
  t.is(stalled.stderr, 'meshbox: the server answered HTTP 200, but its answer broke off: no activity for 3000 ms\n');
  const cut = await against((_request, response) => {
    partial(response);
    setImmediate(() => response.socket?.destroy());
  }, ['count'], await folder());
  t.is(cut.code, 1);
  t.is(cut.stderr, 'meshbox: the server answered HTTP 200, but the connection closed before the whole answer arrived\n');
  t.is(cut.requests.length, 3, 'asked again, as after a dropped connection, until the retries were spent');
});

test('an answer with headers too large for Node is not taken for an unreachable server', async (t) => {
  const result = await against((_request, response) => json(response, 200, { count: 1 }, { 'x-padding': 'x'.repeat(20_000) }), ['count'], await folder());
  t.is(result.code, 1);
  t.regex(result.stderr, /^meshbox: the answer from https:\/\/127\.0\.0\.1:\d+ has larger headers than a client takes/);
});

test('a 429 asking to be asked again later than the client waits (an hour) is reported at once, saying when', async (t) => {
  const result = await against((_request, response) => json(response, 429, { errorDescription: 'slow down' }, { 'retry-after': '3600' }), ['count'], await folder());
  t.is(result.code, 1);
  t.is(result.requests.length, 1);
  t.regex(result.stderr, /slow down; the server asks to be asked again in 3600 s, longer than the 5 minutes this client waits \(HTTP 429/);
});

test('an answer that is not valid HTTP (two lengths) is said to be that, not taken for an unreachable server', async (t) => {
  const result = await against(
    (_request, response) => {
      response.socket?.end('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx');
    },
    ['count'],
    await folder(),
  );
  t.is(result.code, 1);
  t.regex(result.stderr, /^meshbox: the answer from https:\/\/127\.0\.0\.1:\d+ is not valid HTTP \(Parse Error: /);
});

test("receive replaces no file of the folder that is not its own earlier save of that message: ids a server picks to hit the user's files are refused and left in the inbox, the others received", async (t) => {
  const cwd = await folder();
  const settings = '{"theme": "the user\'s own"}\n';
  const plan = "the user's own plan\n";
  await writeFile(join(cwd, 'config.json'), settings);
  await writeFile(join(cwd, 'notes_plan.txt'), plan);
  const result = await against(
    (request, response) => {
      const url = request.url ?? '';
      if (url.endsWith('/inbox')) return json(response, 200, { messages: ['config', 'notes', MESSAGE_ID] });
      const id = /\/inbox\/([^/?]+)/.exec(url)?.[1] ?? '';
      if (request.method === 'PUT') return json(response, 200, { messageId: id });
      // `config` aims at config.json, `notes` (its file plan.txt) at notes_plan.txt.
      chunk(response, 200, { 'mex-messageid': id, 'mex-chunk-range': '1:1', 'mex-filename': id === 'notes' ? 'plan.txt' : 'result.txt' }, 'from the server\n');
    },
    ['receive', '.'],
    cwd,
  );
  t.is(result.code, 1, result.stderr);
  t.regex(result.stderr, /config\.json is in the folder and is not meshbox's earlier save of message config, so it is left as it is and the message is not saved: move that file away, and the next receive saves the message \(message config stays in the inbox\)/);
  t.regex(result.stderr, /notes_plan\.txt is in the folder and is not meshbox's earlier save of message notes.*\(message notes stays in the inbox\)/);
  t.regex(result.stderr, /2 messages not received/);
  t.is(await readFile(join(cwd, 'config.json'), 'utf8'), settings);
  t.is(await readFile(join(cwd, 'notes_plan.txt'), 'utf8'), plan);
  t.deepEqual(
    result.requests.filter((request) => request.startsWith('PUT')),
    [`PUT /messageexchange/${mailbox.mailbox.id}/inbox/${MESSAGE_ID}/status/acknowledged`],
    'only the message saved is acknowledged',
  );
  t.deepEqual(
    (await readdir(cwd)).filter((name) => !name.startsWith('.meshbox-')).sort(),
    ['config.json', 'notes_plan.txt', `${MESSAGE_ID}.json`, `${MESSAGE_ID}_result.txt`].sort(),
    'nothing else written, nothing hidden left',
  );
});

/**
 * An inbox of one-chunk messages, listed in the order given (or those `listed`), each the
 * sender's `file` holding `body`; a message `failing` names has its chunk answered 500.
 */
function inboxServing(
  messages: Record<string, { readonly file: string; readonly body: string }>,
  failing: ReadonlySet<string> = new Set(),
  listed: readonly string[] = Object.keys(messages),
): Answer {
  return (request, response) => {
    const url = request.url ?? '';
    if (url.endsWith('/inbox')) return json(response, 200, { messages: listed });
    const id = /\/inbox\/([^/?]+)/.exec(url)?.[1] ?? '';
    if (request.method === 'PUT') return json(response, 200, { messageId: id });
    if (request.method === 'GET' && failing.has(id)) return json(response, 500, { errorDescription: 'storage unavailable' });
    chunk(response, 200, { 'mex-messageid': id, 'mex-chunk-range': '1:1', 'mex-filename': messages[id]!.file }, request.method === 'HEAD' ? '' : messages[id]!.body);
  };
}

const acknowledged = (requests: readonly string[]): string[] =>
  requests.filter((request) => request.startsWith('PUT')).map((request) => /\/inbox\/([^/]+)\//.exec(request)![1]!);

// An id may hold `_`, so one message's `<ID>.json` can be another's `<ID>_<file>`: what a file
// holds proves nothing, for the server wrote it.
test("a server cannot forge receive's record of its own files: a description sent as another message's payload does not let a message replace the user's file it names", async (t) => {
  const cwd = await folder();
  const spreadsheet = "the user's own spreadsheet\n";
  await writeFile(join(cwd, 'lab_results_2024.csv'), spreadsheet);
  const forged = JSON.stringify({ messageId: 'lab_results', payloadFile: 'lab_results_2024.csv', mexHeaders: {} });
  const result = await against(
    inboxServing({ lab: { file: 'results.json', body: forged }, lab_results: { file: '2024.csv', body: 'from the server\n' } }),
    ['receive', '.'],
    cwd,
  );
  t.is(result.code, 1, result.stderr);
  t.regex(result.stderr, /lab_results_2024\.csv is in the folder and is not meshbox's earlier save of message lab_results.*\(message lab_results stays in the inbox\)/);
  t.is(await readFile(join(cwd, 'lab_results_2024.csv'), 'utf8'), spreadsheet);
  t.is(await readFile(join(cwd, 'lab_results.json'), 'utf8'), forged, "message lab's payload is left as it is too");
  t.deepEqual(acknowledged(result.requests), ['lab']);
});

// A claim names what a message is to write; only what a run of it did write is its own: a
// name a failed run never wrote may since hold a file of another's.
test("a name a failed receive claimed but never wrote is not the message's to replace: a file put there since (the user's, a download of another message) stays", async (t) => {
  const cwd = await folder();
  const messages = { lab: { file: 'x.csv', body: 'from message lab\n' }, OTHER: { file: 'lab_x.csv', body: 'message OTHER, downloaded by the user\n' } };
  const failed = await against(inboxServing(messages, new Set(['lab']), ['lab']), ['receive', '.', '--retries', '0'], cwd);
  t.is(failed.code, 1, failed.stderr);
  t.is((await against(inboxServing(messages), ['download', 'OTHER'], cwd)).code, 0);
  await writeFile(join(cwd, 'lab.json'), "the user's notes\n");
  const again = await against(inboxServing(messages, new Set(), ['lab']), ['receive', '.', '--retries', '0'], cwd);
  t.is(again.code, 1, again.stderr);
  t.regex(again.stderr, /lab_x\.csv is in the folder and is not meshbox's earlier save of message lab/);
  t.is(await readFile(join(cwd, 'lab_x.csv'), 'utf8'), 'message OTHER, downloaded by the user\n');
  t.is(await readFile(join(cwd, 'lab.json'), 'utf8'), "the user's notes\n");
  t.deepEqual(acknowledged(again.requests), []);
});

test("two messages a server gives the same file name: while the first is not acknowledged the second is refused, and once it is, the second finds the file not its own; neither replaces the other's", async (t) => {
  const cwd = await folder();
  // `lab`'s payload, results.json, is saved as lab_results.json: the name of `lab_results`'s description.
  const messages = { lab: { file: 'results.json', body: '{"from": "lab"}\n' }, lab_results: { file: '2024.csv', body: 'from the server\n' } };
  const first = await against(inboxServing(messages, new Set(['lab'])), ['receive', '.', '--retries', '0'], cwd);
  t.is(first.code, 1, first.stderr);
  t.regex(
    first.stderr,
    /message lab_results would be saved as \S*lab_results\.json, which message lab \(not yet acknowledged\) is saved as, so it is not saved: the server gave the two messages the same file name \(message lab_results stays in the inbox\)/,
  );
  t.deepEqual(await savedIn(cwd), [], 'nothing of lab_results is saved where lab would be');
  t.deepEqual(acknowledged(first.requests), []);

  const second = await against(inboxServing(messages), ['receive', '.'], cwd);
  t.is(second.code, 1, second.stderr);
  t.regex(second.stderr, /lab_results\.json is in the folder and is not meshbox's earlier save of message lab_results/);
  t.is(await readFile(join(cwd, 'lab_results.json'), 'utf8'), '{"from": "lab"}\n');
  t.deepEqual(acknowledged(second.requests), ['lab']);
  t.deepEqual((await readdir(cwd)).sort(), ['lab.json', 'lab_results.json'], "lab's claim is gone with its acknowledgement; lab_results keeps none");
});

/**
 * Writes `text` to the socket a byte every `everyMs` (after `first`, at once), never silent for --timeout; stops when the
 * connection goes. A test of the deadline trickles faster: on a loaded machine a late tick must not look like silence.
 */
function trickle(response: ServerResponse, first: string, text: string, everyMs = 400): void {
  const socket = response.socket!;
  socket.write(first);
  let sent = 0;
  const timer = setInterval(() => {
    if (sent >= text.length) {
      clearInterval(timer);
      return;
    }
    socket.write(text[sent]!);
    sent += 1;
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
}

const CHUNKED_JSON_HEAD = 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n';
/** An endless chunked body, one byte a chunk: `{"count": ` and spaces. */
const ENDLESS_JSON = ['{"count": ', ...' '.repeat(1000)].map((part) => `${Buffer.byteLength(part).toString(16)}\r\n${part}\r\n`).join('');

test('a JSON answer trickled a byte at a time (never silent for --timeout) fails at its deadline, five times --timeout, and says so; not asked again', async (t) => {
  const result = await against((_request, response) => trickle(response, CHUNKED_JSON_HEAD, ENDLESS_JSON, 200), ['count', '--timeout', '2'], await folder());
  t.is(result.code, 1);
  t.is(
    result.stderr,
    'meshbox: the server answered HTTP 200, but its answer did not come whole within 10 s of the request, though bytes kept coming ' +
      '(the deadline of an answer that is not a payload: 5 times --timeout)\n',
  );
  t.is(result.requests.length, 1, 'a server that trickled once would again');
});

test("a download's headers trickled a byte at a time fail at the deadline too: only a payload's body has none", async (t) => {
  const cwd = await folder();
  const result = await against((_request, response) => trickle(response, 'HTTP/1.1 200 OK\r\nx-slow: ', 'a'.repeat(1000), 200), ['download', MESSAGE_ID, '--timeout', '2'], cwd);
  t.is(result.code, 1);
  t.regex(result.stderr, /^meshbox: the server at https:\/\/127\.0\.0\.1:\d+ did not answer in time: its answer did not come whole within 10 s of the request/);
  t.deepEqual(await readdir(cwd), []);
});

test('a payload trickled in a byte at a time for longer than that deadline is downloaded whole: its body has only the silence timeout', async (t) => {
  const cwd = await folder();
  const payload = 'a payload that takes fifteen s';
  const head = `HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\nmex-messageid: ${MESSAGE_ID}\r\nmex-filename: slow.txt\r\ncontent-length: ${payload.length}\r\n\r\n`;
  const result = await against(
    (request, response) => (request.method === 'HEAD' ? chunk(response, 200, { 'mex-filename': 'slow.txt' }, '') : trickle(response, head, payload)),
    ['download', MESSAGE_ID, '--timeout', '2'],
    cwd,
  );
  t.is(result.code, 0, result.stderr);
  t.is(await readFile(join(cwd, 'slow.txt'), 'utf8'), payload);
});
