import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { createCertificateAuthority, describeCertificate, issueMailboxCertificate } from '../../shared/src/pki/index.ts';
import { startTestServer, type TestServer } from '../../test/support/harness.ts';
import { type MailboxFiles, runInProcess, runSubprocess, writeMailboxFiles } from './support/cli-fixture.ts';
import { withFakeServer } from './support/fake-server.ts';
import { redatedCertificate } from '../../test/support/redated-certificate.ts';

const WORKFLOW = 'PATH_TEST_RESULTS';
const MESSAGE_ID = /^\d{20}_[0-9A-F]{6}$/;

let server: TestServer;
let work: string;
let lab: MailboxFiles;
let gp: MailboxFiles;

test.before(async () => {
  server = await startTestServer();
  work = await mkdtemp(join(tmpdir(), 'meshbox-cli-test-'));
  lab = await writeMailboxFiles(server, await server.createMailbox({ name: 'Pathology lab' }), join(work, 'profiles'));
  gp = await writeMailboxFiles(server, await server.createMailbox({ name: 'GP practice' }), join(work, 'profiles'));
});

test.after.always(async () => {
  await server?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

/** A fresh folder to run a command in (downloads land there). */
async function folder(): Promise<string> {
  return mkdtemp(join(work, 'run-'));
}

function as(files: MailboxFiles, args: readonly string[], cwd: string) {
  return runInProcess(['--profile', files.profile, ...args], { cwd });
}

async function sendFile(from: MailboxFiles, to: MailboxFiles, payload: Buffer, extra: readonly string[] = []): Promise<string> {
  const cwd = await folder();
  await writeFile(join(cwd, 'payload.bin'), payload);
  const sent = await as(from, ['send', 'payload.bin', '--to', to.mailbox.id, '--workflow', WORKFLOW, '--json', ...extra], cwd);
  if (sent.code !== 0) throw new Error(`send failed: ${sent.stderr}`);
  return (JSON.parse(sent.stdout) as { messageId: string }).messageId;
}

test('--timeout bounds how long a request may stall: a server that never answers fails the command after it', async (t) => {
  const silent = createNetServer((socket) => socket.resume());
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  try {
    // Without the flag this would wait the default two minutes (beyond the test's own timeout).
    const result = await as(gp, ['count', '--url', `https://127.0.0.1:${(silent.address() as AddressInfo).port}`, '--timeout', '1'], await folder());
    t.is(result.code, 1);
    t.regex(result.stderr, /^meshbox: cannot reach https:\/\/127\.0\.0\.1:\d+: no connection within 1000 ms\n$/);
  } finally {
    silent.close();
  }
});

test('--help lists every command with its options and the connection flags', async (t) => {
  const help = await runSubprocess(['--help']);
  t.is(help.code, 0);
  for (const expected of [
    'send <file> [--to <mailbox>] [--workflow <id>] [--subject <text>] [--local-id <id>] [--file-name <name>] [--chunk-size <size>] [--gzip] [--checksum] [--resume <message_id>] [--retries <n>] [--quiet] [--json]',
    'inbox [--workflow <filter>] [--json]',
    'count',
    'download <id> [-o, --output <file>] [--overwrite] [--retries <n>] [--min-free <size>] [--quiet] [--json]',
    'receive <folder> [--watch] [--interval <seconds>] [--retries <n>] [--quiet] [--workflow <filter>] [--min-free <size>] [--json]',
    'dispatch <folder> [--to <mailbox>] [--workflow <id>] [--subject <text>] [--chunk-size <size>] [--gzip] [--checksum] [--watch] [--interval <seconds>] [--retries <n>] [--quiet] [--json]',
    'ack <id...>',
    'track [id] [--local-id <id>] [--json]',
    'lookup <workflow> [--ods <code>] [--json]',
    'handshake',
    'admin',
    '--profile <file>',
    '--shared-key <key>',
    'MESHBOX_CERT',
    'MESHBOX_TIMEOUT',
  ]) {
    t.true(help.stdout.includes(expected), `help mentions ${expected}`);
  }
});

test('a file sent with the CLI arrives byte-identical, ack empties the inbox, and the sender sees it acknowledged', async (t) => {
  const payload = randomBytes(400_000);
  const cwd = await folder();
  await writeFile(join(cwd, 'result.bin'), payload);

  const sent = await as(lab, ['send', 'result.bin', '--to', gp.mailbox.id.toLowerCase(), '--workflow', WORKFLOW, '--subject', 'FBC', '--local-id', 'lab-42'], cwd);
  t.is(sent.code, 0, sent.stderr);
  const messageId = sent.stdout.trim();
  t.regex(messageId, MESSAGE_ID);

  const inbox = await as(gp, ['inbox', '--json'], cwd);
  t.is(inbox.code, 0, inbox.stderr);
  t.true((JSON.parse(inbox.stdout) as string[]).includes(messageId));
  const plainInbox = await as(gp, ['inbox'], cwd);
  t.true(plainInbox.stdout.split('\n').includes(messageId));

  const output = join(cwd, 'received.bin');
  const download = await as(gp, ['download', messageId, '-o', 'received.bin'], cwd);
  t.is(download.code, 0, download.stderr);
  t.is(download.stdout.trim(), output);
  t.true((await readFile(output)).equals(payload));
  t.deepEqual(
    (await readdir(cwd)).filter((name) => name.endsWith('.part')),
    [],
    'no temporary file left behind',
  );

  const accepted = await as(lab, ['track', messageId], cwd);
  t.regex(accepted.stdout, /^status\s+accepted/m);
  t.regex(accepted.stdout, /^expires\s+\d{4}-\d\d-\d\dT/m, 'while it waits in the inbox, when it would expire');

  const ack = await as(gp, ['ack', messageId], cwd);
  t.is(ack.code, 0, ack.stderr);
  const after = await as(gp, ['inbox', '--json'], cwd);
  t.false((JSON.parse(after.stdout) as string[]).includes(messageId));

  const tracked = await as(lab, ['track', messageId, '--json'], cwd);
  t.is(tracked.code, 0, tracked.stderr);
  const tracking = JSON.parse(tracked.stdout) as { message_id: string; status: string; local_id: string };
  t.is(tracking.message_id, messageId);
  t.is(tracking.status, 'acknowledged');
  t.is(tracking.local_id, 'lab-42');

  const byLocalId = await as(lab, ['track', '--local-id', 'lab-42', '--json'], cwd);
  t.is(byLocalId.code, 0, byLocalId.stderr);
  t.like(JSON.parse(byLocalId.stdout), { message_id: messageId, status: 'acknowledged' });

  const summary = await as(lab, ['track', messageId], cwd);
  t.regex(summary.stdout, /^status\s+acknowledged/m);
  t.regex(summary.stdout, new RegExp(`^to\\s+${gp.mailbox.id}$`, 'm'));
  t.regex(summary.stdout, /^file\s+result\.bin, 400000 bytes, 1 chunk$/m);
  t.notRegex(summary.stdout, /^expires/m);
});

test('ack takes several ids: each acknowledged in turn; one the server refuses is named on stderr, the rest go on, and the command exits 1', async (t) => {
  const cwd = await folder();
  const first = await sendFile(lab, gp, randomBytes(100));
  const second = await sendFile(lab, gp, randomBytes(100));
  const missing = '20200101000000000000_ABCDEF';
  const result = await as(gp, ['ack', first.toLowerCase(), missing, second], cwd);
  t.is(result.code, 1);
  t.deepEqual(result.stdout.split('\n'), [`acknowledged ${first}`, `acknowledged ${second}`, '']);
  const lines = result.stderr.split('\n');
  t.regex(lines[0] ?? '', new RegExp(`^meshbox: message ${missing} not acknowledged: .* \\(HTTP 404, MESH code 20\\)$`));
  t.is(lines[1], 'meshbox: 1 of 3 messages not acknowledged (see above)');
  t.is(lines.length, 3);
  const inbox = JSON.parse((await as(gp, ['inbox', '--json'], cwd)).stdout) as string[];
  t.false(inbox.includes(first));
  t.false(inbox.includes(second));
  // One id alone: its refusal is the command's only line.
  const alone = await as(gp, ['ack', missing], cwd);
  t.is(alone.code, 1);
  t.regex(alone.stderr, new RegExp(`^meshbox: message ${missing} not acknowledged: .* \\(HTTP 404, MESH code 20\\)\n$`));
  // Any one id that cannot be one is a usage error before anything is acknowledged.
  const third = await sendFile(lab, gp, randomBytes(100));
  const usage = await as(gp, ['ack', third, '..'], cwd);
  t.is(usage.code, 2);
  t.true((JSON.parse((await as(gp, ['inbox', '--json'], cwd)).stdout) as string[]).includes(third));
});

test('ack stops at a server that does not answer, saying how many ids were not tried', async (t) => {
  const silent = createNetServer((socket) => socket.resume());
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  try {
    const url = `https://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const result = await as(gp, ['ack', '20200101000000000000_ABCDEF', '20200101000000000001_ABCDEF', '20200101000000000002_ABCDEF', '--url', url, '--timeout', '1'], await folder());
    t.is(result.code, 1);
    t.is(result.stdout, '');
    t.regex(result.stderr, /^meshbox: message 20200101000000000000_ABCDEF not acknowledged: cannot reach .*; the 2 after it were not tried\n$/);
  } finally {
    silent.close();
  }
});

test('a folder no file can be made in (/sys: not even root may write there) is said to be that by receive, download and dispatch, and nothing is received', async (t) => {
  const cwd = await folder();
  const messageId = await sendFile(lab, gp, randomBytes(100));
  const unwritable = (worker: string) => new RegExp(`^meshbox: cannot make files in /sys \\((EACCES|EPERM|EROFS)\\): (this user may not write there|its file system is read-only), and the ${worker} writes there\n$`);
  const receive = await as(gp, ['receive', '/sys'], cwd);
  t.is(receive.code, 1);
  t.regex(receive.stderr, unwritable('receiver'));
  const download = await as(gp, ['download', messageId, '-o', '/sys/result.bin'], cwd);
  t.is(download.code, 1);
  t.regex(download.stderr, unwritable('download'));
  t.true((JSON.parse((await as(gp, ['inbox', '--json'], cwd)).stdout) as string[]).includes(messageId), 'still in the inbox');
  const dispatch = await as(lab, ['dispatch', '/sys', '--to', gp.mailbox.id, '--workflow', WORKFLOW], cwd);
  t.is(dispatch.code, 1);
  t.regex(dispatch.stderr, unwritable('dispatcher'));
});

test('download without -o saves under the sender\'s file name, reduced to a bare name', async (t) => {
  const payload = randomBytes(1000);
  const messageId = await sendFile(lab, gp, payload, ['--file-name', '../../escape.bin']);
  const cwd = await folder();
  const download = await as(gp, ['download', messageId], cwd);
  t.is(download.code, 0, download.stderr);
  t.is(download.stdout.trim(), join(cwd, 'escape.bin'));
  t.true((await readFile(join(cwd, 'escape.bin'))).equals(payload));
});

test('download never replaces a file already there (two messages named results.csv) unless given --overwrite', async (t) => {
  const [first, second] = [Buffer.from('first results'), Buffer.from('second results')];
  const firstId = await sendFile(lab, gp, first, ['--file-name', 'results.csv']);
  const secondId = await sendFile(lab, gp, second, ['--file-name', 'results.csv']);
  const cwd = await folder();
  const saved = join(cwd, 'results.csv');
  t.is((await as(gp, ['download', firstId], cwd)).code, 0);

  for (const args of [[secondId], [secondId, '-o', 'results.csv']]) {
    const refused = await as(gp, ['download', ...args], cwd);
    t.is(refused.code, 1, args.join(' '));
    t.is(refused.stderr, `meshbox: ${saved} already exists and was left as it is: give -o with another name (or --overwrite to replace it)\n`);
    t.true((await readFile(saved)).equals(first), 'the first message\'s file is kept');
    t.deepEqual(await readdir(cwd), ['results.csv'], 'no temporary file is left');
  }

  const replaced = await as(gp, ['download', secondId, '--overwrite'], cwd);
  t.is(replaced.code, 0, replaced.stderr);
  t.true((await readFile(saved)).equals(second));
});

test('download refuses a folder at the target before fetching anything, --overwrite or not: -o naming one is a usage error', async (t) => {
  const payload = randomBytes(1000);
  // Of several chunks: a download of one that fails at the end keeps them in a hidden partial file.
  const messageId = await sendFile(lab, gp, payload, ['--file-name', 'results', '--chunk-size', '400']);
  const cwd = await folder();
  await mkdir(join(cwd, 'results'));

  for (const extra of [[], ['--overwrite']]) {
    const named = await as(gp, ['download', messageId, '-o', 'results', ...extra], cwd);
    t.is(named.code, 2, extra.join(' '));
    t.true(named.stderr.startsWith(`error: -o results is a folder: give the path of the file to write, -o ${join('results', '<name>')}\n`), named.stderr);
    const byDefault = await as(gp, ['download', messageId, ...extra], cwd);
    t.is(byDefault.code, 1, extra.join(' '));
    t.is(byDefault.stderr, `meshbox: ${join(cwd, 'results')} is a folder, so the message cannot be saved under that name (nothing was downloaded)\n`);
    t.deepEqual(await readdir(cwd), ['results'], 'no partial file is left beside it');
    t.deepEqual(await readdir(join(cwd, 'results')), [], 'nothing is written into it');
  }
  // A name ending in a separator is a folder's, there or not: no file takes the folder's name.
  const unmade = await as(gp, ['download', messageId, '-o', 'unmade/'], cwd);
  t.is(unmade.code, 2);
  t.true(unmade.stderr.startsWith('error: -o unmade/ is a folder: give the path of the file to write'), unmade.stderr);
  t.deepEqual(await readdir(cwd), ['results']);
  const nowhere = await as(gp, ['download', messageId, '-o', join('nowhere', 'r.bin')], cwd);
  t.is(nowhere.code, 1);
  t.is(nowhere.stderr, `meshbox: ${join(cwd, 'nowhere')} is not a folder (download does not create one): nothing was downloaded\n`);
  t.deepEqual(await readdir(cwd), ['results']);

  const saved = await as(gp, ['download', messageId, '-o', join('results', 'results.bin')], cwd);
  t.is(saved.code, 0, saved.stderr);
  t.true((await readFile(join(cwd, 'results', 'results.bin'))).equals(payload));
});

test('count and handshake work from environment variables alone, run as a separate process', async (t) => {
  const env = {
    MESHBOX_URL: server.origin,
    MESHBOX_MAILBOX: gp.mailbox.id,
    MESHBOX_PASSWORD: gp.mailbox.password,
    MESHBOX_SHARED_KEY: server.sharedKey,
    MESHBOX_CERT: gp.cert,
    MESHBOX_KEY: gp.key,
    MESHBOX_CA: gp.ca,
  };
  const handshake = await runSubprocess(['handshake'], { env });
  t.is(handshake.code, 0, handshake.stderr);
  const expires = describeCertificate(gp.mailbox.certPem).notAfter;
  t.is(handshake.stdout.trim(), `handshake OK: mailbox ${gp.mailbox.id}; its certificate expires on ${expires.toISOString().slice(0, 10)} (in 825 days)`);
  t.is(handshake.stderr, '');
  const count = await runSubprocess(['count'], { env });
  t.is(count.code, 0, count.stderr);
  t.regex(count.stdout.trim(), /^\d+$/);
});

test('handshake with a certificate that expires within 30 days warns on stderr, and still succeeds', async (t) => {
  const mailbox = await server.createMailbox();
  const expiring = issueMailboxCertificate({ ca: server.ca, mailboxId: mailbox.id, validityDays: 5 });
  const files = await writeMailboxFiles(server, { ...mailbox, certPem: expiring.certPem, keyPem: expiring.keyPem }, await folder());
  const result = await runInProcess(['--profile', files.profile, 'handshake'], { cwd: await folder() });
  t.is(result.code, 0, result.stderr);
  t.is(result.stdout, `handshake OK: mailbox ${mailbox.id}; its certificate expires on ${describeCertificate(expiring.certPem).notAfter.toISOString().slice(0, 10)} (in 5 days)\n`);
  t.is(result.stderr, 'meshbox: warning: the certificate expires in 5 days: ask your MESH administrator for a new one now (meshbox cert request makes the request)\n');
});

test('missing settings are each named, with how to supply them, and exit 1', async (t) => {
  const result = await runInProcess(['inbox'], { cwd: await folder(), env: { MESHBOX_MAILBOX: 'x26ot001' } });
  t.is(result.code, 1);
  t.is(result.stdout, '');
  t.true(result.stderr.startsWith('meshbox: connection settings are incomplete'));
  for (const expected of ['--password <password>', 'MESHBOX_SHARED_KEY', '"sharedKey"', '--cert <file>', 'MESHBOX_KEY', '"ca"', '--profile <file>']) {
    t.true(result.stderr.includes(expected), `mentions ${expected}`);
  }
  t.false(result.stderr.includes('mailbox id is missing'), 'the mailbox from the environment counts');
});

test('a refused send prints the server\'s description, HTTP status and MESH code, and exits 1', async (t) => {
  const cwd = await folder();
  await writeFile(join(cwd, 'big.bin'), randomBytes(300_000));
  const result = await as(lab, ['send', 'big.bin', '--to', 'NOSUCHMAILBOX', '--workflow', WORKFLOW], cwd);
  t.is(result.code, 1);
  t.is(result.stdout, '');
  t.regex(result.stderr, /^meshbox: .*Unregistered to address.* \(HTTP 417, MESH code 12\)\n$/);
});

test('a message that is not there gives a one-line error and exit 1, leaving no file', async (t) => {
  const cwd = await folder();
  const result = await as(gp, ['download', '20200101000000000000_ABCDEF', '-o', 'nothing.bin'], cwd);
  t.is(result.code, 1);
  t.regex(result.stderr, /^meshbox: .* \(HTTP 404, MESH code 20\)\n$/);
  t.deepEqual(await readdir(cwd), []);
});

test('usage errors exit 2', async (t) => {
  const cwd = await folder();
  const missingOption = await as(lab, ['send', 'x.bin', '--workflow', WORKFLOW], cwd);
  t.is(missingOption.code, 2);
  t.true(missingOption.stderr.includes("required option '--to <mailbox>' not specified"));
  t.is((await runInProcess(['nonsense'], { cwd })).code, 2);
  t.is((await runInProcess(['ack'], { cwd })).code, 2);
  // An empty workflow, ODS code or local id would ask another path of the server.
  for (const args of [['lookup', ''], ['lookup', WORKFLOW, '--ods', ' '], ['track', '--local-id', '']]) {
    const empty = await as(lab, args, cwd);
    t.is(empty.code, 2, args.join(' '));
    t.regex(empty.stderr, /Give (a workflow id|an ODS code|the local id)/, args.join(' '));
  }
  // An empty workflow filter (a variable unset) would select every workflow: another receiver's results taken and acknowledged.
  const into = await folder();
  for (const args of [['inbox', '--workflow', ''], ['receive', into, '--workflow', ' ']]) {
    const empty = await as(gp, args, cwd);
    t.is(empty.code, 2, args.join(' '));
    t.regex(empty.stderr, /Give a workflow filter/, args.join(' '));
    t.is(empty.stdout, '', args.join(' '));
  }
  t.deepEqual(await readdir(into), [], 'nothing received');
});

test('connection flags may follow the command name, and beat the profile there', async (t) => {
  const cwd = await folder();
  const result = await runInProcess(['count', '--profile', gp.profile, '--mailbox', lab.mailbox.id], { cwd });
  // The profile's certificate is the GP's, so the lab's mailbox is refused: the flag was used.
  t.is(result.code, 1);
  t.regex(result.stderr, /\(HTTP 403/);
  t.regex(result.stderr, /check the mailbox id and password, the shared key, that the mailbox is active, and that the certificate is the mailbox's own/, 'a 403 says what to check');
  const fine = await runInProcess(['count', '--profile', gp.profile], { cwd });
  t.is(fine.code, 0, fine.stderr);
});

test('an empty file is refused before any request, saying it is empty; gzipped it goes (the server judges the body as sent)', async (t) => {
  const cwd = await folder();
  await writeFile(join(cwd, 'empty.txt'), '');
  const refused = await as(lab, ['send', 'empty.txt', '--to', gp.mailbox.id, '--workflow', WORKFLOW], cwd);
  t.is(refused.code, 1);
  t.is(refused.stderr, 'meshbox: empty.txt is empty, and MESH refuses a message with no data\n');
  const gzipped = await as(lab, ['send', 'empty.txt', '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--gzip', '--json'], cwd);
  t.is(gzipped.code, 0, gzipped.stderr);
});

test('an unreachable server gives "cannot reach" and exit 1', async (t) => {
  const result = await as(gp, ['count', '--url', 'https://127.0.0.1:1'], await folder());
  t.is(result.code, 1);
  t.regex(result.stderr, /^meshbox: cannot reach https:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/);
});

test('a server certificate the CA given does not vouch for is said to be that, with the flag to check, not "cannot reach"', async (t) => {
  const otherCa = join(await folder(), 'other-ca.crt');
  await writeFile(otherCa, createCertificateAuthority({ commonName: 'Another CA' }).certPem);
  const result = await as(gp, ['count', '--ca', otherCa], await folder());
  t.is(result.code, 1);
  t.regex(result.stderr, /^meshbox: the server at https:\/\/\S+ has a certificate the CA certificate given does not vouch for \(.+\): check --ca \(MESHBOX_CA, or the profile's ca\)\n$/);
});

test('a client certificate past its end (beyond any clock difference) is refused before connecting, saying so and what to do; nothing is taken for sent', async (t) => {
  const mailbox = await server.createMailbox();
  const hour = 3_600_000;
  // Ended three hours ago: further than the clocks of a client and a server that accepts its tokens may differ.
  const expired = { certPem: redatedCertificate(server.ca, mailbox.certPem, { notBefore: new Date(Date.now() - 100 * hour), notAfter: new Date(Date.now() - 3 * hour) }), keyPem: mailbox.keyPem };
  const files = await writeMailboxFiles(server, { ...mailbox, certPem: expired.certPem, keyPem: expired.keyPem }, await folder());
  // Where the server would be: a listener that counts the connections made to it.
  let connections = 0;
  const listener = createNetServer((socket) => {
    connections += 1;
    socket.destroy();
  });
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  try {
    const cwd = await folder();
    await writeFile(join(cwd, 'result.txt'), 'a result');
    const url = `https://127.0.0.1:${(listener.address() as AddressInfo).port}`;
    const notAfter = describeCertificate(expired.certPem).notAfter.toISOString();
    for (const args of [['handshake'], ['send', 'result.txt', '--to', gp.mailbox.id, '--workflow', WORKFLOW], ['receive', '.']]) {
      const result = await runInProcess(['--profile', files.profile, '--url', url, ...args], { cwd });
      t.is(result.code, 1, args[0]);
      t.is(
        result.stderr,
        `meshbox: the client certificate ${files.cert} (from profile ${files.profile}) expired on ${notAfter}, and the server refuses it: ` +
          'ask your MESH administrator for a new one (meshbox cert request makes the request)\n',
        args[0],
      );
    }
    t.is(connections, 0, 'nothing was sent');
  } finally {
    listener.close();
  }
});

test("a client certificate that is not yet valid is refused beyond the clocks' difference; within it, or just past its end, the server decides, and its refusal is explained by the dates", async (t) => {
  const mailbox = await server.createMailbox();
  const hour = 3_600_000;
  const dated = async (notBefore: number, notAfter: number) => {
    const certPem = redatedCertificate(server.ca, mailbox.certPem, { notBefore: new Date(Date.now() + notBefore), notAfter: new Date(Date.now() + notAfter) });
    const files = await writeMailboxFiles(server, { ...mailbox, certPem }, await folder());
    return { result: await runInProcess(['--profile', files.profile, 'handshake'], { cwd: await folder() }), notBefore: describeCertificate(certPem).notBefore };
  };
  const early = await dated(3 * hour, 100 * hour);
  t.is(early.result.code, 1);
  t.regex(early.result.stderr, new RegExp(`is valid only from ${early.notBefore.toISOString()}: is this computer's clock right\\?\\n$`));
  // A minute either side: as a client's clock a little off would see them. Sent all the same; the
  // server, by its own clock, refuses them, and the dates then say why.
  for (const [notBefore, notAfter, why] of [
    [60_000, 100 * hour, "is valid only from \\S+: is this computer's clock right\\?"],
    [-100 * hour, -60_000, 'expired on \\S+, and the server refuses it'],
  ] as const) {
    const { result } = await dated(notBefore, notAfter);
    t.is(result.code, 1);
    t.regex(result.stderr, new RegExp(`^meshbox: the connection to \\S+ broke: .*\\(the client certificate \\S+ \\(from profile \\S+\\) ${why}`), 'the server asked, then the refusal explained');
  }
});

test('track by a local id no message carries is a 404, as one by the id of a message this mailbox did not send (its recipient asking), each saying so; an id and --local-id together, or neither, is a usage error', async (t) => {
  const cwd = await folder();
  const never = `never-${randomBytes(4).toString('hex')}`;
  const unknown = await as(lab, ['track', '--local-id', never], cwd);
  t.is(unknown.code, 1);
  t.true(unknown.stderr.startsWith(`meshbox: no message this mailbox sent carries local id ${never} (`), unknown.stderr);
  t.regex(unknown.stderr, /HTTP 404/);
  // The recipient asking: tracking is the sender's.
  const received = await sendFile(lab, gp, randomBytes(10));
  const asRecipient = await as(gp, ['track', received.toLowerCase()], cwd);
  t.is(asRecipient.code, 1);
  t.regex(asRecipient.stderr, new RegExp(`^meshbox: no message this mailbox sent has id ${received} \\(only its sender can track a message, until its record is purged\\): .*HTTP 404`));
  for (const args of [['track', '20260101000000000000_ABC123', '--local-id', 'x'], ['track']]) {
    const usage = await as(lab, args, cwd);
    t.is(usage.code, 2, args.join(' '));
    t.regex(usage.stderr, /give exactly one of a message id and --local-id/);
  }
});

test('track --local-id of a local id on several messages says so, and to track them by message id, against meshbox and MESH (whose 300 says only "Multiple Choices")', async (t) => {
  const cwd = await folder();
  await writeFile(join(cwd, 'payload.bin'), 'x');
  const localId = `twice-${randomBytes(4).toString('hex')}`;
  for (let sent = 0; sent < 2; sent += 1) {
    const result = await as(lab, ['send', 'payload.bin', '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--local-id', localId], cwd);
    t.is(result.code, 0, result.stderr);
  }
  const meshbox = await as(lab, ['track', '--local-id', localId], cwd);
  // MESH's sandbox: the status alone, in MESH's error shape.
  const mesh = await withFakeServer(
    server.ca,
    (_request, _body, response) => response.writeHead(300, { 'content-type': 'application/vnd.mesh.v2+json' }).end('{"detail":[{"event":"","code":"","msg":"Multiple Choices"}]}'),
    (origin) => as(lab, ['--url', origin, 'track', '--local-id', localId], cwd),
  );
  for (const tracked of [meshbox, mesh]) {
    t.is(tracked.code, 1);
    t.true(tracked.stderr.startsWith(`meshbox: local id ${localId} is on several messages this mailbox sent: track each by its message id (`), tracked.stderr);
    t.regex(tracked.stderr, /HTTP 300/);
  }
});

test('inbox --workflow lists only the messages its MESH filter selects', async (t) => {
  const tag = randomBytes(3).toString('hex').toUpperCase();
  const cwd = await folder();
  await writeFile(join(cwd, 'payload.bin'), 'x');
  const ids: Record<string, string> = {};
  for (const workflow of [`RESULTS_${tag}`, `ORDERS_${tag}`]) {
    const sent = await as(lab, ['send', 'payload.bin', '--to', gp.mailbox.id, '--workflow', workflow], cwd);
    t.is(sent.code, 0, sent.stderr);
    ids[workflow] = sent.stdout.trim();
  }
  const listed = async (filter: string) => JSON.parse((await as(gp, ['inbox', '--workflow', filter, '--json'], cwd)).stdout) as string[];
  t.deepEqual(await listed(`RESULTS_${tag}`), [ids[`RESULTS_${tag}`]]);
  t.deepEqual(await listed(`ORDERS_${tag}*`), [ids[`ORDERS_${tag}`]]);
  const allButResults = await listed(`!RESULTS_${tag}`);
  t.true(allButResults.includes(ids[`ORDERS_${tag}`]!));
  t.false(allButResults.includes(ids[`RESULTS_${tag}`]!));
});

test('lookup finds the mailboxes registered to receive a workflow: an organisation\'s by --ods, or every one', async (t) => {
  const tag = randomBytes(3).toString('hex').toUpperCase();
  const workflow = `REFERRALS_${tag}`;
  const [first, second, elsewhere] = await Promise.all([
    server.createMailbox({ name: 'Ward A', odsCode: `A${tag}`, workflows: [workflow] }),
    // A name that, printed as it is, would look like a line for another mailbox.
    server.createMailbox({ name: 'Ward B\nX26OT001\tTrusted Lab', odsCode: `A${tag}`, workflows: [workflow] }),
    server.createMailbox({ name: 'Clinic', odsCode: `B${tag}`, workflows: [workflow] }),
  ]);
  await server.createMailbox({ name: 'Not for referrals', odsCode: `A${tag}`, workflows: [`OTHER_${tag}`] });
  const cwd = await folder();
  const byOds = await as(lab, ['lookup', workflow, '--ods', `A${tag}`], cwd);
  t.is(byOds.code, 0, byOds.stderr);
  t.deepEqual(byOds.stdout.trim().split('\n').sort(), [`${first.id}\tWard A`, `${second.id}\tWard B\\nX26OT001\\tTrusted Lab`].sort());
  const everyone = await as(lab, ['lookup', workflow, '--json'], cwd);
  t.is(everyone.code, 0, everyone.stderr);
  t.deepEqual(
    (JSON.parse(everyone.stdout) as { mailboxId: string }[]).map((found) => found.mailboxId).sort(),
    [first.id, second.id, elsewhere.id].sort(),
  );
  const none = await as(lab, ['lookup', workflow, '--ods', `C${tag}`], cwd);
  t.is(none.code, 0);
  t.is(none.stdout, '');
  t.is(none.stderr.trim(), `no mailbox of C${tag} is registered to receive ${workflow}`);
});
