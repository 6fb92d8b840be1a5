import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { renameSync, type Stats, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { appendFile, chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import test from 'ava';
import { type BootMoment, bootMoment } from '../../shared/src/processes.ts';
import { advanceLifecycle } from '../../server/src/domain/lifecycle.ts';
import { fileTemporaryDirectory } from '../../test/support/temporary-directory.ts';
import { startTestServer, type TestServer } from '../../test/support/harness.ts';
import { mailboxRequest } from '../../test/support/http.ts';
import { overriding } from '../../test/support/overriding.ts';
import { MeshClientError, MeshConnectionError } from '../src/client/errors.ts';
import { MeshClient, type TrackingInfo } from '../src/client/mesh-client.ts';
import { dispatchFolder, type DispatchOptions, type DispatchReceipt } from '../src/transfer/dispatch.ts';
import { IN_DOUBT_MS } from '../src/transfer/send-by-local-id.ts';
import { SendInDoubtError } from '../src/transfer/dispatch/errors.ts';
import { type Journal, readJournal, writeJournal } from '../src/transfer/dispatch/journal.ts';
import { JOURNAL_FOLDER } from '../src/transfer/dispatch/layout.ts';
import { downloadFile } from '../src/transfer/download.ts';
import { noProgress, type ProgressFactory } from '../src/transfer/progress.ts';
import { type InProcessOptions, mailboxPair, type MailboxFiles, runInProcess } from './support/cli-fixture.ts';

const WORKFLOW = 'PATH_TEST_RESULTS';

let server: TestServer;
const work = fileTemporaryDirectory(test, 'dispatch-test');

test.before(async () => {
  server = await startTestServer();
});

test.after.always(async () => {
  await server?.close();
});

const pair = () => mailboxPair(server, join(work, 'profiles'));

/** A file put into the outbox a minute ago (older than the settling time), its control file first. */
async function put(outbox: string, name: string, payload: Buffer, control?: unknown): Promise<void> {
  const aMinuteAgo = new Date(Date.now() - 60_000);
  const controlFile = join(outbox, `${name}.ctl.json`);
  if (control !== undefined) {
    await writeFile(controlFile, typeof control === 'string' ? control : JSON.stringify(control));
    await utimes(controlFile, aMinuteAgo, aMinuteAgo);
  }
  await writeFile(join(outbox, name), payload);
  await utimes(join(outbox, name), aMinuteAgo, aMinuteAgo);
}

/**
 * A file being written as the pass looks: its time set ahead, so it still counts as changed
 * in the last 2 s however late the pass comes on a busy machine.
 */
async function writeUnsettled(outbox: string, name: string, payload: string): Promise<void> {
  await writeFile(join(outbox, name), payload);
  const ahead = new Date(Date.now() + 120_000);
  await utimes(join(outbox, name), ahead, ahead);
}

function as(files: MailboxFiles, args: readonly string[], running?: Pick<InProcessOptions, 'stopSignal' | 'onStdout'>) {
  return runInProcess(['--profile', files.profile, ...args], { cwd: work, ...running });
}

const inboxOf = async (files: MailboxFiles): Promise<string[]> =>
  (await mailboxRequest(server, files.mailbox, { path: `/messageexchange/${files.mailbox.id}/inbox` })).json().messages;

/** The text of every message in the inbox, sorted. */
async function inboxContents(gp: MailboxFiles): Promise<string[]> {
  return (await Promise.all((await inboxOf(gp)).map(async (id) => (await fetched(gp, id)).bytes.toString()))).sort();
}

/** What the recipient gets: the message's metadata and its bytes. */
async function fetched(gp: MailboxFiles, messageId: string) {
  const client = new MeshClient(gp.settings);
  try {
    const metadata = await client.head(messageId);
    const into = await mkdtemp(join(work, 'fetched-'));
    const download = await downloadFile(client, { messageId, output: 'payload', cwd: into, progress: noProgress, overwrite: false });
    return { metadata, bytes: await readFile(download.path) };
  } finally {
    client.close();
  }
}

test('the temporary files a crash left in sent/ and failed/ are removed by the first pass of a process; later passes do not read those folders again', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  for (const name of ['sent', 'failed']) await mkdir(join(outbox, name));
  // What a kill during a receipt's write, or a move into failed/, leaves.
  await writeFile(join(outbox, 'sent', '.20260101000000000000_ABC123.json.0a1b2c3d.part'), '{"messageId":');
  await writeFile(join(outbox, 'failed', '.bad.hl7.reason.txt.0a1b2c3d.part'), 'unknown rec');
  await put(outbox, 'fbc.hl7', randomBytes(100));
  const first = await as(lab, ['dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW]);
  t.is(first.code, 0, first.stderr);
  t.false((await readdir(join(outbox, 'sent'))).some((name) => name.endsWith('.part')));
  t.deepEqual(await readdir(join(outbox, 'failed')), []);

  // Nothing in this process leaves one (its writes clean up after themselves): a later pass leaves sent/ unread.
  const planted = '.20260101000000000000_DEF456.json.0a1b2c3d.part';
  await writeFile(join(outbox, 'sent', planted), '{');
  t.is((await as(lab, ['dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW])).code, 0);
  t.true((await readdir(join(outbox, 'sent'))).includes(planted));
});

test('dispatch sends every waiting file (chunked, gzipped, with its control file) and moves it into sent/ beside a receipt; other files stay', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const small = randomBytes(2_000);
  const large = randomBytes(250_000);
  const controlled = Buffer.from('Na,140\nK,4.1\n');
  await put(outbox, 'fbc.hl7', small);
  await put(outbox, 'scan.bin', large);
  await put(outbox, 'u&e.csv', controlled, { subject: 'U&E', localId: 'lab-77', fileName: 'renal.csv' });
  // Not ready, or not messages at all.
  await writeFile(join(outbox, '.hidden'), 'x');
  await writeFile(join(outbox, 'half.part'), 'x');
  await writeFile(join(outbox, 'half.tmp'), 'x');
  await writeUnsettled(outbox, 'just-written.txt', 'still being written');

  const run = await as(lab, ['dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--chunk-size', '100000', '--gzip', '--json']);
  t.is(run.code, 0, run.stderr);
  const receipts = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as DispatchReceipt);
  t.deepEqual(receipts.map((receipt) => [receipt.file, receipt.chunks, receipt.recovered]), [
    ['fbc.hl7', 1, false],
    ['scan.bin', 3, false],
    ['u&e.csv', 1, false],
  ]);

  t.deepEqual((await readdir(outbox)).sort(), ['.hidden', '.meshbox-dispatch', 'failed', 'half.part', 'half.tmp', 'just-written.txt', 'sent']);
  t.deepEqual(await readdir(join(outbox, '.meshbox-dispatch')), [], 'no journal is left once sent');
  const sentFiles = (await readdir(join(outbox, 'sent'))).sort();
  t.deepEqual(sentFiles, receipts.flatMap((receipt) => [`${receipt.messageId}.json`, `${receipt.messageId}_${receipt.file}`]).sort());
  for (const receipt of receipts) {
    t.deepEqual(JSON.parse(await readFile(join(outbox, 'sent', `${receipt.messageId}.json`), 'utf8')), receipt);
  }

  t.deepEqual((await inboxOf(gp)).sort(), receipts.map((receipt) => receipt.messageId).sort());
  const [fbc, scan, ue] = await Promise.all(receipts.map((receipt) => fetched(gp, receipt.messageId)));
  t.true(fbc!.bytes.equals(small));
  t.like(fbc!.metadata, { to: gp.mailbox.id, workflowId: WORKFLOW, fileName: 'fbc.hl7' });
  t.true(scan!.bytes.equals(large));
  t.true(ue!.bytes.equals(controlled));
  t.like(ue!.metadata, { subject: 'U&E', localId: 'lab-77', fileName: 'renal.csv' });
  t.is(receipts[2]!.localId, 'lab-77');
  t.regex(receipts[0]!.localId, /^dispatch-[0-9a-f]{16}$/, 'a made-up local id, to find the message again after a crash');
});

test("dispatch's receipts and refusals are no more readable than the file they tell of, and its journals no other user's: a lab system's private result (0600) does not leave its subject and local id (a patient's name and number) readable by every local user", async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'fbc.hl7', Buffer.from('MSH|RESULT FOR JANE DOE'), { to: gp.mailbox.id, subject: 'FBC result for Jane Doe', localId: 'NHS 943 476 5919' });
  await put(outbox, 'nobody.hl7', Buffer.from('MSH|RESULT FOR JOHN DOE'), { to: 'NOSUCHBOX01', subject: 'FBC result for John Doe' });
  for (const name of await readdir(outbox)) await chmod(join(outbox, name), 0o600);
  // The common umask, which lets every local user read what is made with the default mode.
  const umask = process.umask(0o022);
  try {
    const run = await as(lab, ['dispatch', outbox, '--workflow', WORKFLOW]);
    t.is(run.code, 1, run.stderr);
    await writeJournal(outbox, {
      file: 'next.hl7', size: 1, mtimeMs: 0, localId: 'NHS 943 476 5919', earlier: null, sentTo: gp.mailbox.id,
      sentWorkflowId: WORKFLOW, sentFileName: 'next.hl7', messageId: null, chunkSize: 1024, gzip: false, attemptedAt: null, attemptedOnBoot: null,
    });
  } finally {
    process.umask(umask);
  }
  const modes = async (folder: string, suffix: string) =>
    Promise.all((await readdir(join(outbox, folder))).filter((name) => name.endsWith(suffix)).map(async (name) => [name, (await stat(join(outbox, folder, name))).mode & 0o777] as const));
  const receipts = await modes('sent', '.json');
  t.is(receipts.length, 1);
  t.true((await readFile(join(outbox, 'sent', receipts[0]![0]), 'utf8')).includes('Jane Doe'));
  t.deepEqual([...receipts, ...(await modes('failed', '.error.json')), ...(await modes(JOURNAL_FOLDER, '.json'))].map(([, mode]) => mode.toString(8)), ['600', '600', '640']);
});

// Only root may give a file to another user.
(process.getuid?.() === 0 ? test : test.skip)("dispatch run as root (a container) leaves a receipt and a refusal to the owner of the file they tell of: the lab system that wrote a private result reads what became of it", async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const labSystem = { uid: 1000, gid: 1000 };
  await put(outbox, 'fbc.hl7', Buffer.from('MSH|RESULT FOR JANE DOE'), { to: gp.mailbox.id, subject: 'FBC result for Jane Doe' });
  await put(outbox, 'nobody.hl7', Buffer.from('MSH|RESULT FOR JOHN DOE'), { to: 'NOSUCHBOX01' });
  for (const name of await readdir(outbox)) {
    await chmod(join(outbox, name), 0o600);
    await chown(join(outbox, name), labSystem.uid, labSystem.gid);
  }
  t.is((await as(lab, ['dispatch', outbox, '--workflow', WORKFLOW])).code, 1);
  const owners = async (folder: string, suffix: string) =>
    Promise.all((await readdir(join(outbox, folder))).filter((name) => name.endsWith(suffix)).map(async (name) => {
      const { uid, gid, mode } = await stat(join(outbox, folder, name));
      return { uid, gid, mode: (mode & 0o777).toString(8) };
    }));
  const lab600 = { ...labSystem, mode: '600' };
  t.deepEqual([...(await owners('sent', '.json')), ...(await owners('failed', '.error.json'))], [lab600, lab600]);
});

test('a file the server refuses, or whose control file is wrong, moves into failed/ with the reason, its control file beside it; one nothing addresses stays', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'nobody.txt', Buffer.from('a'), { to: 'NOSUCHBOX01' });
  await put(outbox, 'typo.txt', Buffer.from('b'), { recipient: 'X26HC001' });
  await put(outbox, 'broken.txt', Buffer.from('c'), '{"to": ');
  await put(outbox, 'unaddressed.txt', Buffer.from('d'));
  await put(outbox, 'two-lines.txt', Buffer.from('e'), { to: 'X26HC001', subject: 'two\nlines' });

  const run = await as(lab, ['dispatch', outbox, '--workflow', WORKFLOW]);
  t.is(run.code, 1);
  t.is(run.stdout, '');
  t.regex(run.stderr, /nobody\.txt: .*\(HTTP 417, MESH code (12|EPL-151)\) \(moved to failed\/\)/);
  t.regex(run.stderr, /typo\.txt: .*unknown field "recipient"/);
  t.regex(run.stderr, /broken\.txt: its control file broken\.txt\.ctl\.json is not JSON/);
  t.regex(run.stderr, /^meshbox: nothing says where unaddressed\.txt goes \(no recipient\): give --to and --workflow, or put them in unaddressed\.txt\.ctl\.json \(unaddressed\.txt stays in the folder\)$/m);
  t.regex(run.stderr, /two-lines\.txt: its control file two-lines\.txt\.ctl\.json gives a subject that cannot go as a MESH header/);
  t.regex(run.stderr, /5 files not sent/);

  t.deepEqual((await readdir(outbox)).sort(), ['.meshbox-dispatch', 'failed', 'sent', 'unaddressed.txt'], 'unaddressed: the command is the one to put right');
  const failed = await readdir(join(outbox, 'failed'));
  for (const file of ['nobody.txt', 'typo.txt', 'broken.txt', 'two-lines.txt']) {
    const moved = failed.find((name) => name.endsWith(`_${file}`));
    t.truthy(moved, file);
    const error = JSON.parse(await readFile(join(outbox, 'failed', `${moved}.error.json`), 'utf8')) as { file: string; reason: string };
    t.is(error.file, file);
    t.true(error.reason.length > 0);
  }
  t.true(failed.some((name) => name.endsWith('_typo.txt.ctl.json')), 'the control file goes with its file');
  t.false(failed.some((name) => name.endsWith('_unaddressed.txt')));

  // The flag put back, the file goes.
  const addressed = await as(lab, ['dispatch', outbox, '--workflow', WORKFLOW, '--to', gp.mailbox.id]);
  t.is(addressed.code, 0, addressed.stderr);
  t.false((await readdir(outbox)).includes('unaddressed.txt'));
});

/** The client, but its upload of chunk 3 fails (a connection reset): a send cut off part-way. */
function cutAtChunkThree(client: MeshClient): MeshClient {
  return overriding(client, {
    uploadChunk: async (messageId, chunkNumber, totalChunks, body, options) => {
      if (chunkNumber === 3) throw new Error('connection reset');
      await client.uploadChunk(messageId, chunkNumber, totalChunks, body, options);
    },
  });
}

/** One pass in this process, with a client whose methods a test may replace. */
async function pass(
  recipient: MailboxFiles,
  outbox: string,
  client: MeshClient,
  extra: Partial<DispatchOptions> = {},
): Promise<{ failed: number; refused: number; sent: DispatchReceipt[]; errors: unknown[] }> {
  const sent: DispatchReceipt[] = [];
  const errors: unknown[] = [];
  const { failed, refused } = await dispatchFolder(client, {
    folder: outbox,
    defaults: { to: recipient.mailbox.id, workflowId: WORKFLOW },
    chunkSize: 100_000,
    gzip: false,
    checksum: false,
    progress: noProgress,
    onSent: (receipt) => sent.push(receipt),
    onRefused: (file, reason) => errors.push(new Error(`${file} refused: ${reason}`)),
    onFailed: (_file, error) => errors.push(error),
    ...extra,
  });
  return { failed, refused, sent, errors };
}

/** One pass with a client of the sender's own, closed after it. */
async function passAs(sender: MailboxFiles, recipient: MailboxFiles, outbox: string, extra: Partial<DispatchOptions> = {}): ReturnType<typeof pass> {
  const client = new MeshClient(sender.settings, { retryDelayMs: 10 });
  try {
    return await pass(recipient, outbox, client, extra);
  } finally {
    client.close();
  }
}

/** The client, but every message it sends is accepted by the server and its answer never arrives. */
function answerNeverArrives(client: MeshClient): MeshClient {
  return overriding(client, {
    sendMessage: async (options) => {
      await client.sendMessage(options);
      throw new Error('socket hang up');
    },
  });
}

test('a one-chunk send whose answer was lost is found again by its local id on the next pass, not sent twice', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const payload = randomBytes(3_000);
  await put(outbox, 'result.hl7', payload);
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  try {
    const answerLost = answerNeverArrives(client);
    const first = await pass(gp, outbox, answerLost);
    t.is(first.failed, 1);
    t.deepEqual(first.sent, []);
    t.deepEqual(await readdir(join(outbox, 'sent')), []);
    t.is((await inboxOf(gp)).length, 1, 'the server has the message');

    const second = await pass(gp, outbox, client);
    t.deepEqual(second.errors, []);
    t.is(second.sent.length, 1);
    t.like(second.sent[0], { file: 'result.hl7', recovered: true, to: gp.mailbox.id, bytes: payload.length });
  } finally {
    client.close();
  }
  const inbox = await inboxOf(gp);
  t.is(inbox.length, 1);
  t.true((await fetched(gp, inbox[0]!)).bytes.equals(payload));
  t.deepEqual((await readdir(outbox)).sort(), ['.meshbox-dispatch', 'failed', 'sent']);
});

test('a control file whose fields are padded with spaces (fixed-width, as lab systems write them) sends them unpadded, as HTTP takes them; a lost answer is then found again, not sent twice', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const payload = randomBytes(3_000);
  await put(outbox, 'result.hl7', payload, { to: ` ${gp.mailbox.id}  `, workflowId: `${WORKFLOW} `, localId: 'ACC123   ', fileName: 'result.hl7 ', subject: ' potassium ' });
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  try {
    t.is((await pass(gp, outbox, answerNeverArrives(client))).failed, 1);
    const second = await pass(gp, outbox, client);
    t.deepEqual(second.errors, []);
    t.like(second.sent[0], { file: 'result.hl7', recovered: true, to: gp.mailbox.id });
  } finally {
    client.close();
  }
  const inbox = await inboxOf(gp);
  t.is(inbox.length, 1, 'sent once');
  t.like((await fetched(gp, inbox[0]!)).metadata, { localId: 'ACC123', fileName: 'result.hl7', subject: 'potassium', workflowId: WORKFLOW });
});

test('a server out of reach (its connection refused) ends the pass at the first file, rather than every file failing alike after its own retries; a connection broken part-way is the file\'s own, and the pass goes on', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  for (const name of ['a.txt', 'b.txt', 'c.txt']) await put(outbox, name, Buffer.from(name));
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  const failing = (code: string) => {
    const tried: string[] = [];
    const through = overriding(client, {
      sendMessage: async (options) => {
        tried.push(options.fileName ?? '');
        throw new MeshConnectionError(lab.settings.url, Object.assign(new Error(`connect ${code}`), { code }), { newConnection: code === 'ECONNREFUSED', likelyRefusal: undefined });
      },
    });
    return { tried, through };
  };
  try {
    const refused = failing('ECONNREFUSED');
    await t.throwsAsync(pass(gp, outbox, refused.through), { message: /cannot reach .*ECONNREFUSED/ });
    t.deepEqual(refused.tried, ['a.txt']);
    const broken = failing('ECONNRESET');
    t.is((await pass(gp, outbox, broken.through)).failed, 3);
    t.deepEqual(broken.tried, ['a.txt', 'b.txt', 'c.txt']);
  } finally {
    client.close();
  }
  t.deepEqual(await inboxOf(gp), []);
});

test('a send of several chunks cut off part-way is resumed on the next pass from the chunks the server lacks', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const payload = randomBytes(350_000);
  await put(outbox, 'images.bin', payload);
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  const uploaded: number[] = [];
  try {
    const first = await pass(gp, outbox, cutAtChunkThree(client));
    t.is(first.failed, 1);
    t.deepEqual(await inboxOf(gp), [], 'an incomplete message is not delivered');

    const counting = overriding(client, {
      uploadChunk: async (messageId, chunkNumber, totalChunks, body, options) => {
        uploaded.push(chunkNumber);
        await client.uploadChunk(messageId, chunkNumber, totalChunks, body, options);
      },
    });
    const second = await pass(gp, outbox, counting);
    t.deepEqual(second.errors, []);
    t.like(second.sent[0], { file: 'images.bin', chunks: 4, recovered: true });
  } finally {
    client.close();
  }
  t.deepEqual(uploaded, [3, 4], 'only the chunks the server lacked');
  const inbox = await inboxOf(gp);
  t.is(inbox.length, 1);
  t.true((await fetched(gp, inbox[0]!)).bytes.equals(payload));
});

test('a new file under the name of one whose send was cut short is sent as a new message, even one renamed into its place at the same size and time (rsync -a, cp -p)', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'daily.csv', Buffer.from('monday'));
  await put(outbox, 'weekly.csv', Buffer.from('week 1'));
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  try {
    const answerLost = answerNeverArrives(client);
    t.is((await pass(gp, outbox, answerLost)).failed, 2);
    // Someone replaces the files before the next pass: they are not the ones the server has.
    await rm(join(outbox, 'daily.csv'));
    await put(outbox, 'daily.csv', Buffer.from('tuesday, a longer file'));
    renameInPlace(outbox, 'weekly.csv', 'week 2', 'the same');
    const second = await pass(gp, outbox, client);
    t.deepEqual(second.sent.map(({ file, recovered }) => [file, recovered]), [['daily.csv', false], ['weekly.csv', false]]);
  } finally {
    client.close();
  }
  t.deepEqual(await inboxContents(gp), ['monday', 'tuesday, a longer file', 'week 1', 'week 2']);
});

/** The fields of MESH's v2 tracking (its specification's schema, as the sandbox's views/tracking.py gives them). */
const MESH_TRACKING_FIELDS = [
  'message_id', 'local_id', 'workflow_id', 'filename', 'expiry_time', 'upload_timestamp', 'recipient', 'recipient_name', 'recipient_ods_code',
  'recipient_org_code', 'recipient_org_name', 'status_success', 'status', 'status_event', 'status_timestamp', 'status_description', 'status_code',
];

/**
 * The client, its tracking answered as a MESH server answers it: none of meshbox's own fields,
 * and `fields` over the rest (a status given, its detail is only what `fields` say).
 */
function trackedAsMesh(client: MeshClient, fields: Partial<TrackingInfo>): MeshClient {
  return overriding(client, {
    track: async (messageId) => {
      const tracking = await client.track(messageId);
      const kept = (field: string) => MESH_TRACKING_FIELDS.includes(field) && !(fields.status !== undefined && field.startsWith('status_'));
      const mesh = Object.fromEntries(Object.entries(tracking).filter(([field]) => kept(field)));
      return { ...mesh, ...fields } as TrackingInfo;
    },
  });
}

test("an earlier run's message that a MESH server reports failed (error, undeliverable), or in a status dispatch does not know, is not sent again: the file moves to failed/ saying why", async (t) => {
  const { lab, gp } = await pair();
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  const cases: { readonly fields: Partial<TrackingInfo>; readonly reason: RegExp }[] = [
    // The sandbox's tracking of a message that failed after it was accepted: no code, no description.
    { fields: { status: 'error', status_success: false }, reason: /which the server reports error: it went, and will not be delivered now; it is not sent again/ },
    // Code 14 with event TRANSFER, as meshbox's discarded upload has (MESH's sandbox gives its code 14, undelivered, event SEND): no accepted_timestamp, so not one.
    {
      fields: { status: 'error', status_success: false, status_code: '14', status_event: 'TRANSFER', status_description: 'Undelivered\nmessage' },
      reason: /which the server reports error \(code 14, TRANSFER: Undelivered message\): it went, and will not be delivered now/,
    },
    { fields: { status: 'undeliverable', status_success: false }, reason: /which the server reports undeliverable: it went, and will not be delivered now/ },
    { fields: { status: 'Rejected' }, reason: /which the server reports Rejected: a status dispatch does not know, so whether it is delivered cannot be told from here; it is not sent again/ },
  ];
  try {
    for (const { fields, reason } of cases) {
      const outbox = await mkdtemp(join(work, 'outbox-'));
      await put(outbox, 'result.hl7', randomBytes(2_000));
      t.is((await pass(gp, outbox, answerNeverArrives(client))).failed, 1);
      const second = await pass(gp, outbox, trackedAsMesh(client, fields));
      t.like(second, { failed: 0, refused: 1, sent: [] }, fields.status);
      t.regex(String(second.errors[0]), /^Error: result\.hl7 refused: an earlier run sent it as message \d{20}_[0-9A-F]{6}, /);
      t.regex(String(second.errors[0]), reason);
      const failed = await readdir(join(outbox, 'failed'));
      const moved = failed.find((name) => name.endsWith('_result.hl7'));
      t.truthy(moved, fields.status);
      t.regex((JSON.parse(await readFile(join(outbox, 'failed', `${moved}.error.json`), 'utf8')) as { reason: string }).reason, reason);
      t.deepEqual((await readdir(outbox)).sort(), ['.meshbox-dispatch', 'failed', 'sent']);
      t.deepEqual(await readdir(join(outbox, '.meshbox-dispatch')), [], 'its note goes with it: put back, it goes as a new message');
    }
  } finally {
    client.close();
  }
  t.is((await inboxOf(gp)).length, cases.length, 'each file went once: none was sent again');
});

test('an upload meshbox discarded for not completing in time is sent again, as a new message; a MESH server\'s error for the same message is not taken for that', async (t) => {
  const { lab, gp } = await pair();
  const payload = randomBytes(350_000);
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  const afterUploadExpiry = { ...server.services, now: () => new Date(Date.now() + server.services.periods.uploadExpiryMs + 1000) };
  const cutShort = async (): Promise<string> => {
    const outbox = await mkdtemp(join(work, 'outbox-'));
    await put(outbox, 'images.bin', payload);
    t.is((await pass(gp, outbox, cutAtChunkThree(client))).failed, 1);
    const messageId = (await readJournal(outbox, 'images.bin'))!.messageId!;
    await advanceLifecycle(afterUploadExpiry, messageId);
    t.like(await client.track(messageId), { status: 'error', accepted_timestamp: null }, 'discarded');
    return outbox;
  };
  try {
    const discarded = await pass(gp, await cutShort(), client);
    t.deepEqual(discarded.errors, []);
    t.like(discarded.sent[0], { file: 'images.bin', recovered: false, chunks: 4 });

    // Told as MESH would tell it (no accepted_timestamp), the message may have been complete: it stays unsent.
    const asMesh = await pass(gp, await cutShort(), trackedAsMesh(client, {}));
    t.like(asMesh, { refused: 1, sent: [] });
    t.regex(String(asMesh.errors[0]), /which the server reports error \(code 14, TRANSFER: Upload not completed in time; the message was discarded\): it went/);
  } finally {
    client.close();
  }
  const inbox = await inboxOf(gp);
  t.is(inbox.length, 1, 'the discarded upload, sent anew once');
  t.true((await fetched(gp, inbox[0]!)).bytes.equals(payload));
});

test('a send of several chunks cut off part-way is resumed against a server whose tracking is MESH\'s: no stored_chunks, so every chunk after the first goes again; no chunk_count, so v1 tracking\'s chunkCount is checked, or none when there is none', async (t) => {
  const { lab, gp } = await pair();
  const payload = randomBytes(350_000);
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  const v1Asked: string[] = [];
  const withV1 = (v1: 'answers' | 'fails'): MeshClient =>
    overriding(client, {
      trackV1: async (messageId) => {
        v1Asked.push(v1);
        // A server without v1 tracking refuses it.
        if (v1 === 'fails') throw new MeshClientError({ status: 404, code: undefined, event: undefined, description: 'Not Found', messageId: undefined, internalId: undefined });
        return client.trackV1(messageId);
      },
    });
  try {
    for (const v1 of ['answers', 'fails'] as const) {
      const outbox = await mkdtemp(join(work, 'outbox-'));
      await put(outbox, 'images.bin', payload);
      t.is((await pass(gp, outbox, cutAtChunkThree(client))).failed, 1);
      const uploaded: number[] = [];
      const counting = overriding(withV1(v1), {
        uploadChunk: async (messageId, chunkNumber, totalChunks, body, options) => {
          uploaded.push(chunkNumber);
          await client.uploadChunk(messageId, chunkNumber, totalChunks, body, options);
        },
      });
      const second = await pass(gp, outbox, trackedAsMesh(counting, {}));
      t.deepEqual(second.errors, [], v1);
      t.like(second.sent[0], { file: 'images.bin', chunks: 4, recovered: true }, v1);
      t.deepEqual(uploaded, [2, 3, 4], `v1 ${v1}: every chunk after the first`);
    }
  } finally {
    client.close();
  }
  t.deepEqual(v1Asked, ['answers', 'fails']);
  const inbox = await inboxOf(gp);
  t.is(inbox.length, 2);
  for (const messageId of inbox) t.true((await fetched(gp, messageId)).bytes.equals(payload));
});

test("a send of several chunks an earlier run left complete is recorded with its chunk count from the note, where MESH's tracking has none", async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const payload = randomBytes(350_000);
  await put(outbox, 'images.bin', payload);
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  try {
    t.is((await pass(gp, outbox, cutAtChunkThree(client))).failed, 1);
    // The run was cut short after the message completed, before its receipt: chunks 3 and 4 went.
    const journals = await readdir(join(outbox, JOURNAL_FOLDER));
    const { messageId } = JSON.parse(await readFile(join(outbox, JOURNAL_FOLDER, journals[0]!), 'utf8')) as { messageId: string };
    await client.uploadChunk(messageId, 3, 4, payload.subarray(200_000, 300_000));
    await client.uploadChunk(messageId, 4, 4, payload.subarray(300_000));
    const second = await pass(gp, outbox, trackedAsMesh(client, {}));
    t.deepEqual(second.errors, []);
    t.like(second.sent[0], { file: 'images.bin', messageId, chunks: 4, bytes: payload.length, recovered: true });
    const receipts = (await readdir(join(outbox, 'sent'))).filter((name) => name.endsWith('.json'));
    t.like(JSON.parse(await readFile(join(outbox, 'sent', receipts[0]!), 'utf8')), { messageId, chunks: 4 });
  } finally {
    client.close();
  }
});

test('dispatch --watch sends a file put into the folder after it started, until stopped', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const stop = new AbortController();
  let sentLine = '';
  const watching = as(lab, ['dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--watch', '--interval', '1'], {
    stopSignal: stop.signal,
    onStdout: (text) => {
      sentLine += text;
      if (sentLine.includes('\n')) stop.abort();
    },
  });
  const payload = Buffer.from('arrived later');
  await put(outbox, 'late.txt', payload);
  const run = await watching;

  t.is(run.code, 0, run.stderr);
  const [messageId, file] = run.stdout.trim().split(' ');
  t.is(file, 'late.txt');
  t.deepEqual(await inboxOf(gp), [messageId]);
  t.true((await fetched(gp, messageId!)).bytes.equals(payload));
  t.deepEqual(await readdir(join(outbox, 'sent')), [`${messageId}.json`, `${messageId}_late.txt`].sort());
});

/**
 * A file as a run killed while its one-chunk send was on its way leaves it (no message carries
 * its local id): its journal says when the send went.
 */
async function leaveInDoubt(outbox: string, file: string, content: string, recipient: MailboxFiles, attempt: Pick<Journal, 'attemptedAt' | 'attemptedOnBoot'>): Promise<void> {
  await put(outbox, file, Buffer.from(content));
  const info = await stat(join(outbox, file));
  await mkdir(join(outbox, JOURNAL_FOLDER), { recursive: true });
  await writeJournal(outbox, {
    file, size: info.size, mtimeMs: info.mtimeMs, localId: `dispatch-${randomBytes(8).toString('hex')}`, earlier: null,
    sentTo: recipient.mailbox.id, sentWorkflowId: WORKFLOW, sentFileName: file, messageId: null,
    chunkSize: 100 * 1024 * 1024, gzip: false, ...attempt,
  });
}

/** The monotonic clock as it read `ago` milliseconds before now. */
function bootClockAgo(ago: number): BootMoment {
  const now = bootMoment();
  if (now === null) throw new Error('these tests need Linux\'s boot id');
  return { ...now, sinceBootMs: now.sinceBootMs - ago };
}

test('a file in doubt whose send went 17 minutes ago goes again, though the wall clock, an hour ahead then, dates the send in the future', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await leaveInDoubt(outbox, 'ahead.hl7', 'clock was ahead', gp, { attemptedAt: Date.now() + 43 * 60_000, attemptedOnBoot: bootClockAgo(IN_DOUBT_MS + 60_000) });
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  const { sent, errors } = await pass(gp, outbox, client).finally(() => client.close());
  t.deepEqual(errors, []);
  t.deepEqual(sent.map(({ file }) => file), ['ahead.hl7']);
  t.deepEqual(await inboxContents(gp), ['clock was ahead']);
});

test('a file in doubt whose send went a minute ago waits, though the wall clock, set an hour ahead since, dates the send an hour ago', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await leaveInDoubt(outbox, 'behind.hl7', 'clock set ahead since', gp, { attemptedAt: Date.now() - 61 * 60_000, attemptedOnBoot: bootClockAgo(60_000) });
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  const { sent, errors } = await pass(gp, outbox, client).finally(() => client.close());
  t.deepEqual(sent, []);
  t.is(errors.length, 1);
  t.true(errors[0] instanceof SendInDoubtError);
  const waited = (errors[0] as SendInDoubtError).resendAt.getTime() - Date.now();
  t.true(waited > IN_DOUBT_MS - 2 * 60_000 && waited <= IN_DOUBT_MS - 60_000, `resend in ${waited} ms`);
  t.deepEqual(await inboxContents(gp), []);
});

test('a file in doubt whose note puts its send ahead on the monotonic clock (spoilt by hand) falls back to the wall clock: 17 minutes ago, it goes', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await leaveInDoubt(outbox, 'spoilt.hl7', 'note spoilt', gp, { attemptedAt: Date.now() - IN_DOUBT_MS - 60_000, attemptedOnBoot: bootClockAgo(-24 * 3_600_000) });
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  const { sent, errors } = await pass(gp, outbox, client).finally(() => client.close());
  t.deepEqual(errors, []);
  t.deepEqual(sent.map(({ file }) => file), ['spoilt.hl7']);
});

test('dispatch --watch holds a file in doubt until it may go, and no longer: reported once, then sent (not put off by a backoff)', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  // As a run killed while its one-chunk send was on its way leaves it: due to go again in 8 s
  // (long enough for the watch to start and report it first on a loaded machine).
  await leaveInDoubt(outbox, 'doubt.hl7', 'in doubt', gp, { attemptedAt: Date.now() - IN_DOUBT_MS + 8_000, attemptedOnBoot: null });
  const stop = new AbortController();
  const watching = as(lab, ['dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--watch', '--interval', '1'], {
    stopSignal: stop.signal,
    onStdout: (text) => text.includes('doubt.hl7') && stop.abort(),
  });
  const run = await watching;
  t.is(run.code, 0, run.stderr);
  t.is(run.stderr.match(/its answer never came/g)?.length, 1, run.stderr);
  t.deepEqual(await inboxContents(gp), ['in doubt']);
});

test('a lost answer for a file whose local id other messages carry too cannot be told apart: it moves into failed/, not sent again', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  const refused: string[] = [];
  try {
    await client.sendMessage({ to: gp.mailbox.id, workflowId: WORKFLOW, localId: 'batch-1', body: Buffer.from('earlier'), size: 7 });
    await put(outbox, 'later.txt', Buffer.from('later'), { localId: 'batch-1' });
    const answerLost = answerNeverArrives(client);
    t.is((await pass(gp, outbox, answerLost)).failed, 1);
    const second = await pass(gp, outbox, client, { onRefused: (file, reason) => refused.push(`${file}: ${reason}`) });
    t.deepEqual(second.sent, []);
    t.is(second.failed, 0);
  } finally {
    client.close();
  }
  t.is(refused.length, 1);
  t.regex(refused[0]!, /^later\.txt: .*several messages carry its local id batch-1, so whether it went cannot be told from here/);
  t.is((await inboxOf(gp)).length, 2, 'nothing was sent a second time');
  t.true((await readdir(join(outbox, 'failed'))).some((name) => name.endsWith('_later.txt')));
});

test('a file whose control file reuses an earlier message\'s local id, and whose first try never reached the server, is sent, not taken for that message', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  try {
    const earlierId = await client.sendMessage({ to: gp.mailbox.id, workflowId: WORKFLOW, localId: 'request-9', body: Buffer.from('first result'), size: 12 });
    await put(outbox, 'corrected.txt', Buffer.from('corrected result'), { localId: 'request-9' });
    const unreachable = overriding(client, {
      sendMessage: async () => {
        throw new Error('connect ECONNREFUSED');
      },
    });
    t.is((await pass(gp, outbox, unreachable)).failed, 1);
    const second = await pass(gp, outbox, client);
    t.deepEqual(second.errors, []);
    t.like(second.sent[0], { file: 'corrected.txt', recovered: false, localId: 'request-9' });
    t.not(second.sent[0]!.messageId, earlierId);
  } finally {
    client.close();
  }
  t.deepEqual(await inboxContents(gp), ['corrected result', 'first result']);
});

test('after a lost answer, the next pass finds the message even when the control file has since gone: it went with what it went with', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'referral.pdf', Buffer.from('%PDF'), { to: gp.mailbox.id, workflowId: WORKFLOW, subject: 'Referral' });
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  try {
    t.is((await pass(gp, outbox, answerNeverArrives(client), { defaults: {} })).failed, 1);
    await rm(join(outbox, 'referral.pdf.ctl.json'));
    const second = await pass(gp, outbox, client, { defaults: {} });
    t.deepEqual(second.errors, []);
    t.like(second.sent[0], { file: 'referral.pdf', recovered: true, to: gp.mailbox.id, workflowId: WORKFLOW, subject: 'Referral' });
  } finally {
    client.close();
  }
  t.is((await inboxOf(gp)).length, 1);
});

test('two dispatchers on one folder: the second is refused while the first works, so nothing is sent twice', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'once.txt', Buffer.from('once'));
  const client = new MeshClient(lab.settings, { retryDelayMs: 10 });
  try {
    const outcomes = await Promise.allSettled([pass(gp, outbox, client), pass(gp, outbox, client)]);
    const refused = outcomes.filter((outcome) => outcome.status === 'rejected');
    t.is(refused.length, 1);
    t.regex(String((refused[0] as PromiseRejectedResult).reason), /another dispatcher \(\S+ \d+, host and process\) is working on/);
    // Once the first has finished, the folder is free again.
    t.deepEqual((await pass(gp, outbox, client)).errors, []);
  } finally {
    client.close();
  }
  t.is((await inboxOf(gp)).length, 1);
});

test('files with names no MESH header can carry are refused one by one (names as long as a name can be too); the rest of the folder still goes', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const longName = `${'x'.repeat(246)}.txt`;
  await put(outbox, '検査結果.csv', Buffer.from('a'));
  await put(outbox, 'line\nbreak.txt', Buffer.from('b'));
  // 250 bytes: no room for a control file, nor for failed/'s time stamp and suffixes unless shortened.
  await put(outbox, `${'検'.repeat(82)}.txt`, Buffer.from('c'));
  await put(outbox, longName, Buffer.from('d'));
  await put(outbox, 'zzz.txt', Buffer.from('e'));
  const refused: string[] = [];
  const outcome = await passAs(lab, gp, outbox, { onRefused: (file, reason) => refused.push(`${file}: ${reason}`) });
  t.deepEqual(outcome.errors, []);
  t.deepEqual(outcome.sent.map((receipt) => receipt.file).sort(), [longName, 'zzz.txt']);
  t.is(refused.length, 3);
  t.true(refused.every((line) => /its name cannot go as a MESH header \(Latin-1 text on one line\): give fileName in/.test(line)));
  t.deepEqual((await readdir(outbox)).sort(), ['.meshbox-dispatch', 'failed', 'sent']);
  t.is((await readdir(join(outbox, 'failed'))).length, 6, 'three files, each beside its .error.json');
});

test('a message that another file of the folder sent meanwhile with the same local id is not taken for a waiting file\'s', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  try {
    await put(outbox, 'a.txt', Buffer.from('file a'), { localId: 'shared' });
    const aUnreachable = overriding(client, {
      sendMessage: async (options) => {
        if (options.fileName === 'a.txt') throw new Error('connect ECONNREFUSED');
        return client.sendMessage(options);
      },
    });
    t.is((await pass(gp, outbox, aUnreachable)).failed, 1);
    await put(outbox, 'b.txt', Buffer.from('file b'), { localId: 'shared' });
    const second = await pass(gp, outbox, aUnreachable);
    t.deepEqual(second.sent.map((receipt) => receipt.file), ['b.txt']);
    const third = await pass(gp, outbox, client);
    t.deepEqual(third.errors, []);
    t.like(third.sent[0], { file: 'a.txt', recovered: false });
  } finally {
    client.close();
  }
  t.deepEqual(await inboxContents(gp), ['file a', 'file b']);
});

test('a file still being written when its last chunk went stays, and goes again whole once it has settled', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const path = join(outbox, 'growing.csv');
  await put(outbox, 'growing.csv', Buffer.from('row 1\n'));
  const client = new MeshClient(lab.settings, { retryDelayMs: 10 });
  try {
    // The writer appends right after the file was read and sent.
    const writerStillAtIt = overriding(client, {
      sendMessage: async (options) => {
        const messageId = await client.sendMessage(options);
        await appendFile(path, 'row 2\n');
        return messageId;
      },
    });
    const first = await pass(gp, outbox, writerStillAtIt);
    t.is(first.failed, 1);
    t.regex(String(first.errors[0]), /growing\.csv changed while it was being sent: message \S+ holds its first 6 bytes/);
    t.deepEqual(first.sent, []);

    // It settles (put back a minute in the past), and the next pass sends the whole file.
    const aMinuteAgo = new Date(Date.now() - 60_000);
    await utimes(path, aMinuteAgo, aMinuteAgo);
    const second = await pass(gp, outbox, client);
    t.deepEqual(second.errors, []);
    t.like(second.sent[0], { file: 'growing.csv', recovered: false, bytes: 12 });
  } finally {
    client.close();
  }
  t.deepEqual(await inboxContents(gp), ['row 1\n', 'row 1\nrow 2\n']);
});

test('a recipient refused when it came from --to is the setup\'s mistake, not the file\'s: every file stays in the folder', async (t) => {
  const { lab } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'one.txt', Buffer.from('1'));
  await put(outbox, 'two.txt', Buffer.from('2'));

  const run = await as(lab, ['dispatch', outbox, '--to', 'X26HC00L', '--workflow', WORKFLOW]);
  t.is(run.code, 1);
  t.regex(run.stderr, /\(HTTP 417, MESH code (12|EPL-151)\): check --to and --workflow \(one\.txt stays in the folder\)\n/);
  t.regex(run.stderr, /2 files not sent/);
  t.deepEqual((await readdir(outbox)).sort(), ['.meshbox-dispatch', 'failed', 'one.txt', 'sent', 'two.txt']);
  t.deepEqual(await readdir(join(outbox, 'failed')), []);
});

test('an empty file is refused for itself, also when recipient and workflow came from --to and --workflow: it moves to failed/, the others go', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'empty.txt', Buffer.alloc(0));
  await put(outbox, 'full.txt', Buffer.from('a result'));

  const run = await as(lab, ['dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW]);
  t.is(run.code, 1);
  t.regex(run.stderr, /empty\.txt: empty\.txt is empty, and MESH refuses a message with no data \(moved to failed\/\)/);
  t.deepEqual((await readdir(outbox)).sort(), ['.meshbox-dispatch', 'failed', 'sent']);
  t.true((await readdir(join(outbox, 'failed'))).some((name) => name.endsWith('_empty.txt')));
  t.deepEqual(await inboxContents(gp), ['a result']);

  // Gzipped it would be some bytes, and the server would take them: still a placeholder, not a result.
  await put(outbox, 'placeholder.txt', Buffer.alloc(0));
  const gzipped = await as(lab, ['dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--gzip']);
  t.is(gzipped.code, 1);
  t.regex(gzipped.stderr, /placeholder\.txt: placeholder\.txt is empty, and MESH refuses a message with no data \(moved to failed\/\)/);
  t.true((await readdir(join(outbox, 'failed'))).some((name) => name.endsWith('_placeholder.txt')));
  t.deepEqual(await inboxContents(gp), ['a result']);
});

test("a file whose time is far ahead of this machine's clock (a share's server clock running ahead) is held back with a word on stderr, whatever the flags; one a moment ahead, without", async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const twoHoursAhead = new Date(Date.now() + 2 * 60 * 60_000);
  await writeFile(join(outbox, 'skewed.hl7'), 'from a share');
  await utimes(join(outbox, 'skewed.hl7'), twoHoursAhead, twoHoursAhead);
  await writeUnsettled(outbox, 'being-written.hl7', 'still coming');
  const run = await as(lab, ['dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--json']);
  t.is(run.code, 0, run.stderr);
  const settles = new Date(twoHoursAhead.getTime() - (twoHoursAhead.getTime() % 1000) + 2000).toISOString().slice(0, 19);
  t.regex(run.stderr, new RegExp(`^meshbox: skewed\\.hl7: its modification time \\(or its control file's\\) is ahead of this machine's clock .*: it is left until ${settles}`, 'm'));
  t.notRegex(run.stderr, /being-written/);
  t.deepEqual((await readdir(outbox)).sort(), ['.meshbox-dispatch', 'being-written.hl7', 'failed', 'sent', 'skewed.hl7']);
  t.deepEqual(await inboxOf(gp), []);
});

test('a control file alone (no file of its name beside it) for 10 minutes is named on stderr, once while it stays, and left alone; one put in first, or beside its file, is not', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const anHourAgo = new Date(Date.now() - 60 * 60_000);
  const aged = async (name: string, text: string): Promise<void> => {
    await writeFile(join(outbox, name), text);
    await utimes(join(outbox, name), anHourAgo, anHourAgo);
  };
  // Misnamed: the file is result.hl7, which then goes with the defaults.
  await aged('result.ctl.json', JSON.stringify({ to: 'NOBODY' }));
  await aged('paired.hl7.ctl.json', JSON.stringify({ subject: 'paired' }));
  await aged('paired.hl7', 'paired');
  await aged('result.hl7', 'result');
  // Put in first, its file still to come.
  await writeFile(join(outbox, 'coming.hl7.ctl.json'), '{}');
  const stop = new AbortController();
  let sent = '';
  const watching = as(lab, ['dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--watch', '--interval', '1'], {
    stopSignal: stop.signal,
    onStdout: (text) => {
      sent += text;
      if (sent.includes('later.hl7')) stop.abort();
    },
  });
  // Once the first pass has sent both files, one more file makes the passes after it visible.
  while (!sent.includes('result.hl7')) await new Promise((resolve) => setTimeout(resolve, 50));
  await new Promise((resolve) => setTimeout(resolve, 1500));
  await put(outbox, 'later.hl7', Buffer.from('later'));
  const run = await watching;
  t.is(run.code, 0, run.stderr);
  const said = run.stderr.split('\n').filter((line) => line.includes('ctl.json'));
  t.deepEqual(said, [
    `meshbox: result.ctl.json: no file result beside it since ${anHourAgo.toISOString()}: is it misnamed? (a control file is <file>.ctl.json; it is left alone)`,
  ]);
  t.true((await readdir(outbox)).includes('result.ctl.json'), 'left alone');
  t.deepEqual((await inboxContents(gp)).sort(), ['later', 'paired', 'result']);
});

/**
 * Progress displays that, as the send of a file ends (answered or refused), rename a newer file
 * of its name into its place: a corrected result, written beside it first and renamed in.
 */
function replacedAsSendEnds(outbox: string, name: string, newer: string, time: ReplacingTime = 'a minute ago'): ProgressFactory {
  let replaced = false;
  return (spec) => ({
    ...noProgress(spec),
    stop: () => {
      if (spec.label !== 'sending' || replaced) return;
      replaced = true;
      renameInPlace(outbox, name, newer, time);
    },
  });
}

/** A replacing file's time: settled, or that of the file it replaces (as `rsync -a`, or `cp -p` then `mv`, may leave it). */
type ReplacingTime = 'a minute ago' | 'the same';

/** Renames another file, holding `newer`, into `name`'s place. */
function renameInPlace(outbox: string, name: string, newer: string, time: ReplacingTime): void {
  const draft = join(outbox, `.${name}.draft`);
  const mtime = time === 'the same' ? statSync(join(outbox, name)).mtime : new Date(Date.now() - 60_000);
  writeFileSync(draft, newer);
  utimesSync(draft, mtime, mtime);
  renameSync(draft, join(outbox, name));
}

// Another file, whatever its size and time: `rsync -a`, or `cp -p` then `mv`, may leave both as they were.
for (const [time, original, corrected] of [
  ['a minute ago', 'ORIGINAL', 'CORRECTED RESULT'],
  ['the same', 'K 4.1 mmol/L ORIGINAL ', 'K 6.9 mmol/L CORRECTED'],
] as const) {
  test(`a file replaced as its send ends (a corrected result renamed into place, its time ${time}, its size ${original.length === corrected.length ? 'the same' : 'another'}) stays and goes as a message of its own; the one that went is what sent/ records`, async (t) => {
    const { lab, gp } = await pair();
    const outbox = await mkdtemp(join(work, 'outbox-'));
    await put(outbox, 'result.hl7', Buffer.from(original));
    const client = new MeshClient(lab.settings, { retryDelayMs: 10 });
    try {
      const first = await pass(gp, outbox, client, { progress: replacedAsSendEnds(outbox, 'result.hl7', corrected, time) });
      t.deepEqual(first.errors, []);
      t.is(first.sent.length, 1);
      t.is(await readFile(join(outbox, 'result.hl7'), 'utf8'), corrected, 'the newer file stays under its name');
      t.deepEqual(await readdir(join(outbox, 'sent')), [`${first.sent[0]!.messageId}.json`], 'nothing else moved into sent/');

      const second = await pass(gp, outbox, client);
      t.is(second.sent.length, 1);
      t.notDeepEqual(second.sent[0]!.messageId, first.sent[0]!.messageId);
      t.is(await readFile(second.sent[0]!.sentPath, 'utf8'), corrected);
      t.deepEqual(await inboxContents(gp), [corrected, original].sort());
    } finally {
      client.close();
    }
  });
}

/**
 * A file written on a share whose file server's clock runs 10 s behind this machine's: each
 * write stamps it ten seconds old. The writer writes `head`, pauses, and writes `tail` 300 ms
 * after the pass has listed the folder, or as soon as the file has gone, should it go first.
 */
function writtenOnAShareBehind(path: string, head: string, tail: string) {
  const shareClock = () => new Date(Date.now() - 10_000);
  const write = async (text: string, flag: 'w' | 'a') => {
    await writeFile(path, text, { flag });
    await utimes(path, shareClock(), shareClock());
  };
  let rest: Promise<void> | undefined;
  const writeRest = () => (rest ??= write(tail, 'a'));
  return {
    begin: () => write(head, 'w'),
    onListed: () => void setTimeout(writeRest, 300),
    sendingThen: (client: MeshClient) =>
      overriding(client, {
        sendMessage: async (options) => {
          const messageId = await client.sendMessage(options);
          await writeRest();
          return messageId;
        },
      }),
    written: () => writeRest(),
  };
}

test("a file still being written on a share whose clock runs behind this machine's is not sent half-written: a pause mid-file, however old its time, is not a settled file", async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const head = 'MSH|^~\\&|LAB|X26HC|GP|X26OT|20261203||ORU^R01|1|P|2.4\rPID|||9434765919||DOE^JANE\r';
  const tail = 'OBX|1|NM|K^Potassium||6.9|mmol/L|H\r';
  const writer = writtenOnAShareBehind(join(outbox, 'result.hl7'), head, tail);
  await writer.begin();
  const client = new MeshClient(lab.settings, { retryDelayMs: 10 });
  const unsettled: string[] = [];
  try {
    const first = await pass(gp, outbox, writer.sendingThen(client), { onListed: writer.onListed, onUnsettled: (file) => unsettled.push(file) });
    t.deepEqual(first.sent, []);
    t.deepEqual(unsettled, ['result.hl7'], 'left for the next pass');
    await writer.written();
    t.deepEqual((await pass(gp, outbox, client)).errors, []);
  } finally {
    client.close();
  }
  t.deepEqual(await inboxContents(gp), [head + tail], 'the whole result, once, and no part of it');
});

test("a control file still being written on a share whose clock runs behind this machine's is not read half-written: its file waits for it, and goes where it says", async (t) => {
  const { lab, gp } = await pair();
  const { gp: otherGp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const writer = writtenOnAShareBehind(join(outbox, 'result.hl7.ctl.json'), `{"to": "${otherGp.mailbox.id}",`, ' "subject": "potassium"}');
  await writer.begin();
  await put(outbox, 'result.hl7', Buffer.from('K 6.9 mmol/L'));
  const client = new MeshClient(lab.settings, { retryDelayMs: 10 });
  try {
    const first = await pass(gp, outbox, writer.sendingThen(client), { onListed: writer.onListed });
    t.deepEqual([first.sent, first.errors], [[], []]);
    await writer.written();
    t.deepEqual((await pass(gp, outbox, client)).errors, []);
  } finally {
    client.close();
  }
  t.deepEqual(await inboxContents(otherGp), ['K 6.9 mmol/L']);
});

test('a file written to again while the pass sends an earlier one (after the listing found it settled) is not sent that pass: it goes whole on the next, once settled', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'a-first.hl7', Buffer.from('FIRST RESULT'));
  await put(outbox, 'b-second.hl7', Buffer.from('OLD VERSION OF SECOND RESULT'));
  const whole = 'OBX|1|NM|HB^Haemoglobin||135|g/L|\rOBX|2|NM|K^Potassium||6.9|mmol/L|H\r';
  const client = new MeshClient(lab.settings, { retryDelayMs: 10 });
  const unsettled: string[] = [];
  try {
    const rewriting = overriding(client, {
      sendMessage: async (options) => {
        // As the first goes, the lab system begins to rewrite the second in place (a corrected result).
        if (options.fileName === 'a-first.hl7') await writeUnsettled(outbox, 'b-second.hl7', whole.slice(0, 20));
        return client.sendMessage(options);
      },
    });
    const first = await pass(gp, outbox, rewriting, { onUnsettled: (file) => unsettled.push(file) });
    t.deepEqual(first.sent.map(({ file }) => file), ['a-first.hl7']);
    t.deepEqual(unsettled, ['b-second.hl7']);
    await put(outbox, 'b-second.hl7', Buffer.from(whole));
    t.deepEqual((await pass(gp, outbox, client)).sent.map(({ file }) => file), ['b-second.hl7']);
  } finally {
    client.close();
  }
  const delivered = await Promise.all((await inboxOf(gp)).map(async (id) => (await fetched(gp, id)).bytes.toString()));
  t.deepEqual(delivered.sort(), ['FIRST RESULT', whole].sort(), 'nothing half-written');
});

test('a file replaced while the pass looks up its local id (before its send) is not sent that pass: the corrected result goes once, on the next', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'result.hl7', Buffer.from('ORIGINAL'), { localId: 'request-42' });
  const client = new MeshClient(lab.settings, { retryDelayMs: 10 });
  let replaced = false;
  const replacingMeanwhile = overriding(client, {
    messageIdForLocalId: async (localId) => {
      if (!replaced) {
        replaced = true;
        renameInPlace(outbox, 'result.hl7', 'CORRECTED RESULT', 'a minute ago');
      }
      return client.messageIdForLocalId(localId);
    },
  });
  try {
    const first = await pass(gp, outbox, replacingMeanwhile);
    t.true(replaced);
    t.is(first.sent.length, 0);
    t.regex(String(first.errors[0]), /result\.hl7 changed while it was being sent/);
    t.is(await readFile(join(outbox, 'result.hl7'), 'utf8'), 'CORRECTED RESULT', 'it stays');
    const second = await pass(gp, outbox, client);
    t.deepEqual(second.errors, []);
    t.deepEqual(await inboxContents(gp), ['CORRECTED RESULT'], 'sent once; the original, replaced before it went, never');
  } finally {
    client.close();
  }
});

test('a refused file replaced before it is moved to failed/ is not moved: the newer one stays, with its control file, to be tried itself', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'result.hl7', Buffer.from('ORIGINAL'), { to: 'NOSUCHMAILBOX' });
  const client = new MeshClient(lab.settings, { retryDelayMs: 10 });
  try {
    const first = await pass(gp, outbox, client, { progress: replacedAsSendEnds(outbox, 'result.hl7', 'CORRECTED RESULT') });
    t.is(first.refused, 0);
    t.is(first.failed, 1);
    t.regex(String(first.errors[0]), /a newer file of its name came meanwhile: it stays/);
    t.is(await readFile(join(outbox, 'result.hl7'), 'utf8'), 'CORRECTED RESULT');
    t.true((await readdir(outbox)).includes('result.hl7.ctl.json'));
    t.deepEqual(await readdir(join(outbox, 'failed')), []);
  } finally {
    client.close();
  }
});

/** The client, but as each send is answered, or refused, the lab system puts in the control file of the next file of that name (first, as it must). */
function nextControlPutInAsSent(client: MeshClient, outbox: string, control: object): MeshClient {
  return overriding(client, {
    sendMessage: async (options) => {
      try {
        return await client.sendMessage(options);
      } finally {
        writeFileSync(join(outbox, `${options.fileName}.ctl.json`), JSON.stringify(control));
      }
    },
  });
}

/** A control file put in a minute ago (older than the settling time). */
async function controlSettled(outbox: string, name: string): Promise<void> {
  const aMinuteAgo = new Date(Date.now() - 60_000);
  await utimes(join(outbox, `${name}.ctl.json`), aMinuteAgo, aMinuteAgo);
}

test('a control file put in for the next file of its name while the file is sent, or refused, is neither deleted with it nor moved with it into failed/: the next file goes where it says', async (t) => {
  const { lab, gp } = await pair();
  const { gp: otherGp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'result.hl7', Buffer.from('FIRST RESULT, FOR THE DEFAULT GP'));
  await put(outbox, 'refused.hl7', Buffer.from('FOR A MAILBOX THAT IS NOT THERE'), { to: 'NOSUCHMAILBOX' });
  const client = new MeshClient(lab.settings, { retryDelayMs: 10 });
  try {
    const first = await pass(gp, outbox, nextControlPutInAsSent(client, outbox, { to: otherGp.mailbox.id }));
    t.deepEqual(first.sent.map(({ file }) => file), ['result.hl7']);
    t.is(first.refused, 1);
    // The refused file's own control file was written over by the next one's.
    t.deepEqual((await readdir(join(outbox, 'failed'))).map((name) => name.replace(/^.*_/, '')).sort(), ['refused.hl7', 'refused.hl7.error.json']);
    // The next files come once their control files are in.
    for (const name of ['result.hl7', 'refused.hl7']) {
      await controlSettled(outbox, name);
      await put(outbox, name, Buffer.from(`NEXT ${name}, FOR THE OTHER GP`));
    }
    t.deepEqual((await pass(gp, outbox, client)).errors, []);
  } finally {
    client.close();
  }
  t.deepEqual(await inboxContents(otherGp), ['NEXT refused.hl7, FOR THE OTHER GP', 'NEXT result.hl7, FOR THE OTHER GP'], 'each reaches the GP its control file names');
  t.deepEqual(await inboxContents(gp), ['FIRST RESULT, FOR THE DEFAULT GP']);
});

test('a control file put in for the next file of its name after a lost answer stays when the next pass finds that send: the next file goes where it says', async (t) => {
  const { lab, gp } = await pair();
  const { gp: otherGp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'result.hl7', Buffer.from('FIRST RESULT, FOR THE DEFAULT GP'));
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  try {
    t.is((await pass(gp, outbox, nextControlPutInAsSent(answerNeverArrives(client), outbox, { to: otherGp.mailbox.id }))).failed, 1);
    await controlSettled(outbox, 'result.hl7');
    const found = await pass(gp, outbox, client);
    t.like(found.sent[0], { file: 'result.hl7', recovered: true });
    await put(outbox, 'result.hl7', Buffer.from('SECOND RESULT, FOR THE OTHER GP'));
    t.deepEqual((await pass(gp, outbox, client)).errors, []);
  } finally {
    client.close();
  }
  t.deepEqual(await inboxContents(otherGp), ['SECOND RESULT, FOR THE OTHER GP']);
  t.deepEqual(await inboxContents(gp), ['FIRST RESULT, FOR THE DEFAULT GP']);
});

test('a link to a file in the outbox is followed: the file it leads to goes, and the link moves into sent/; links to folders or nothing are left alone', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const elsewhere = await mkdtemp(join(work, 'elsewhere-'));
  await put(elsewhere, 'large.dat', Buffer.from('linked content'));
  await symlink(join(elsewhere, 'large.dat'), join(outbox, 'large.dat'));
  // A relative link leads nowhere once moved into sent/: it goes all the same.
  await put(elsewhere, 'relative.dat', Buffer.from('relatively linked'));
  await symlink(join('..', basename(elsewhere), 'relative.dat'), join(outbox, 'relative.dat'));
  await symlink(elsewhere, join(outbox, 'a-folder'));
  await symlink(join(elsewhere, 'gone.dat'), join(outbox, 'dangling.dat'));
  const run = await passAs(lab, gp, outbox);
  t.deepEqual(run.errors, []);
  t.deepEqual(run.sent.map((receipt) => receipt.file), ['large.dat', 'relative.dat']);
  t.is(await readFile(run.sent[0]!.sentPath, 'utf8'), 'linked content');
  t.deepEqual(await inboxContents(gp), ['linked content', 'relatively linked']);
  t.deepEqual((await readdir(outbox)).sort(), ['.meshbox-dispatch', 'a-folder', 'dangling.dat', 'failed', 'sent']);
});

test('one entry\'s trouble stops no other file: a link round a loop is left alone, a control file that cannot be read fails its file only, a name that is not UTF-8 is reported; temporary and Explorer files of any case stay', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'good.hl7', Buffer.from('good result'));
  await symlink('loop', join(outbox, 'loop'));
  await put(outbox, 'b.hl7', Buffer.from('result b'));
  await symlink('b.hl7.ctl.json', join(outbox, 'b.hl7.ctl.json'));
  // "résultat.hl7" in Latin-1, as a legacy system or a share may write it.
  const latin1 = Buffer.concat([Buffer.from(`${outbox}/r`), Buffer.from([0xe9]), Buffer.from('sultat.hl7')]);
  writeFileSync(latin1, 'latin-1 named result');
  utimesSync(latin1, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  for (const name of ['~DF12AB.TMP', 'RESULT.PART', 'Thumbs.db', 'desktop.ini']) await put(outbox, name, Buffer.from('not a result'));
  const run = await passAs(lab, gp, outbox);
  t.deepEqual(run.sent.map((receipt) => receipt.file), ['good.hl7']);
  t.deepEqual(await inboxContents(gp), ['good result']);
  t.is(run.failed, 2);
  t.is(run.errors.length, 2);
  const reasons = run.errors.map((error) => (error as Error).message).sort();
  t.regex(reasons[0]!, /ELOOP.*b\.hl7\.ctl\.json/);
  t.regex(reasons[1]!, /its name is not UTF-8 \(bytes 72e973756c7461742e686c37\): rename it to send it/);
  t.deepEqual((await readdir(outbox)).filter((name) => !name.startsWith('.') && !['sent', 'failed'].includes(name)).sort(), [
    'RESULT.PART', 'Thumbs.db', 'b.hl7', 'b.hl7.ctl.json', 'desktop.ini', 'loop', 'r\ufffdsultat.hl7', '~DF12AB.TMP',
  ]);
});

test('a control file that is not a file (a named pipe, a folder) refuses its file, which moves into failed/, rather than holding the pass', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'piped.hl7', Buffer.from('piped'));
  execFileSync('mkfifo', [join(outbox, 'piped.hl7.ctl.json')]);
  await put(outbox, 'foldered.hl7', Buffer.from('foldered'));
  await mkdir(join(outbox, 'foldered.hl7.ctl.json'));
  const aMinuteAgo = new Date(Date.now() - 60_000);
  for (const control of ['piped.hl7.ctl.json', 'foldered.hl7.ctl.json']) await utimes(join(outbox, control), aMinuteAgo, aMinuteAgo);
  await put(outbox, 'plain.hl7', Buffer.from('plain'));
  const run = await passAs(lab, gp, outbox);
  t.deepEqual(run.sent.map((receipt) => receipt.file), ['plain.hl7']);
  t.is(run.refused, 2);
  t.deepEqual(run.errors.map((error) => (error as Error).message).sort(), [
    'foldered.hl7 refused: its control file foldered.hl7.ctl.json is not a file',
    'piped.hl7 refused: its control file piped.hl7.ctl.json is not a file',
  ]);
  t.deepEqual((await readdir(outbox)).sort(), ['.meshbox-dispatch', 'failed', 'sent']);
});

test('a file taken away by its writer between the listing and its send is no failure: nothing to send, nothing reported', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'kept.hl7', Buffer.from('kept'));
  await put(outbox, 'withdrawn.hl7', Buffer.from('withdrawn'));
  const run = await passAs(lab, gp, outbox, {
    // Asked just before each file is taken: the writer withdraws this one then.
    skip: (file) => {
      if (file === 'withdrawn.hl7') unlinkSync(join(outbox, file));
      return false;
    },
  });
  t.deepEqual(run.sent.map((receipt) => receipt.file), ['kept.hl7']);
  t.deepEqual(run.errors, []);
  t.is(run.failed, 0);
  t.deepEqual(await inboxContents(gp), ['kept']);
});

test('an outbox folder that has gone (an unmounted share) fails the pass and is not made anew', async (t) => {
  const { lab, gp } = await pair();
  const gone = join(work, 'unmounted', 'outbox');
  await t.throwsAsync(passAs(lab, gp, gone), { code: 'ENOENT' });
  await t.throwsAsync(readdir(join(work, 'unmounted')), { code: 'ENOENT' });
});

test('on a terminal, a file written a moment ago is named as left for the next pass', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await writeUnsettled(outbox, 'just-copied.txt', 'still arriving');
  const run = await runInProcess(['--profile', lab.profile, 'dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW], { cwd: work, tty: true });
  t.is(run.code, 0, run.stderr);
  t.is(run.stdout, '');
  t.regex(run.stderr, /just-copied\.txt changed in the last 2 s: left for the next pass/);
  t.true((await readdir(outbox)).includes('just-copied.txt'));
});

test('a lock left by a process of this host that is gone is taken over; one of another host holds', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'after-crash.txt', Buffer.from('x'));
  const gone = spawn(process.execPath, ['-e', '']);
  await once(gone, 'exit');
  const lock = join(outbox, '.meshbox-dispatch.lock');
  const client = new MeshClient(lab.settings, { retryDelayMs: 10 });
  try {
    await writeFile(lock, `some-other-host ${process.pid}`);
    await t.throwsAsync(pass(gp, outbox, client), { name: 'FolderLockedError', message: /another dispatcher \(some-other-host \d+, host and process\) is working on/ });
    t.deepEqual(await inboxOf(gp), []);

    await writeFile(lock, `${hostname()} ${gone.pid}`);
    const taken = await pass(gp, outbox, client);
    t.deepEqual(taken.errors, []);
    t.deepEqual(taken.sent.map((receipt) => receipt.file), ['after-crash.txt']);
  } finally {
    client.close();
  }
  t.false((await readdir(outbox)).some((name) => name.startsWith('.meshbox-dispatch.lock')), 'released, and nothing left aside');
});

test('a --to, --workflow or --subject no MESH header can carry is a usage error before any file is touched', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'one.txt', Buffer.from('1'));
  const run = await as(lab, ['dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--subject', 'Cost €5']);
  t.is(run.code, 2);
  t.regex(run.stderr, /--subject <text>.*Latin-1 text without line breaks/s);
  t.deepEqual(await readdir(outbox), ['one.txt']);
});

/** A file whose one-chunk send an earlier run made, cut short before the answer came: the server has the message, with the local id returned. */
async function sentByARunCutShort(client: MeshClient, outbox: string, recipient: MailboxFiles, file: string): Promise<{ readonly info: Stats; readonly localId: string }> {
  const payload = randomBytes(2_000);
  await put(outbox, file, payload);
  const localId = `dispatch-${randomBytes(8).toString('hex')}`;
  await client.sendMessage({ to: recipient.mailbox.id, workflowId: WORKFLOW, fileName: file, localId, body: payload, size: payload.length });
  return { info: await stat(join(outbox, file)), localId };
}

test('a note left by the previous version (no attemptedAt, no inode), one written before the machine restarted, or one of another device number (a share mounted anew, by its automounter or a restarted container, may number its files anew: size and time tell its file), is still read: the send it began is found, not sent again', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await mkdir(join(outbox, JOURNAL_FOLDER));
  const client = new MeshClient(lab.settings);
  try {
    const old = await sentByARunCutShort(client, outbox, gp, 'old.hl7');
    const { size, mtimeMs } = old.info;
    const note = { file: 'old.hl7', size, mtimeMs, localId: old.localId, earlier: null, sentTo: gp.mailbox.id, sentWorkflowId: WORKFLOW, sentFileName: 'old.hl7', messageId: null, chunkSize: 100_000, gzip: false };
    await writeFile(join(outbox, JOURNAL_FOLDER, `${createHash('sha256').update('old.hl7').digest('hex').slice(0, 32)}.json`), JSON.stringify(note));
    const restarted = await sentByARunCutShort(client, outbox, gp, 'restarted.hl7');
    const remounted = await sentByARunCutShort(client, outbox, gp, 'remounted.hl7');
    const noted = (file: string, { info, localId }: { readonly info: Stats; readonly localId: string }, changed: { readonly ino: number; readonly dev: number }, attemptedOnBoot: BootMoment) =>
      writeJournal(outbox, {
        file, size: info.size, mtimeMs: info.mtimeMs, ...changed, control: null, localId, earlier: null,
        sentTo: gp.mailbox.id, sentWorkflowId: WORKFLOW, sentFileName: file, messageId: null, chunkSize: 100_000, gzip: false,
        attemptedAt: Date.now() - IN_DOUBT_MS, attemptedOnBoot,
      });
    await noted('restarted.hl7', restarted, { ino: restarted.info.ino + 1, dev: restarted.info.dev + 1 }, { bootId: 'a boot before this one', sinceBootMs: 1_000 });
    // This boot, the share mounted anew since: another device number, the server's inode numbers.
    await noted('remounted.hl7', remounted, { ino: remounted.info.ino, dev: remounted.info.dev + 1 }, bootClockAgo(IN_DOUBT_MS));
    const next = await pass(gp, outbox, client);
    t.deepEqual(next.errors, []);
    t.deepEqual(next.sent.map(({ file, recovered }) => [file, recovered]), [['old.hl7', true], ['remounted.hl7', true], ['restarted.hl7', true]]);
  } finally {
    client.close();
  }
  t.is((await inboxOf(gp)).length, 3, 'none sent again');
});

test('a send of several chunks cut off part-way keeps its message id in its note: resumed, even when its local id was used before', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const payload = randomBytes(350_000);
  const client = new MeshClient(lab.settings, { retries: 0, retryDelayMs: 10 });
  const refused: string[] = [];
  try {
    // The sender reuses a local id it used last week (supported: `earlier`).
    await client.sendMessage({ to: gp.mailbox.id, workflowId: WORKFLOW, localId: 'batch-7', body: Buffer.from('last week'), size: 9 });
    await put(outbox, 'images.bin', payload, { localId: 'batch-7' });
    const first = await pass(gp, outbox, cutAtChunkThree(client));
    t.is(first.failed, 1);
    const journals = await readdir(join(outbox, '.meshbox-dispatch'));
    const journal = JSON.parse(await readFile(join(outbox, '.meshbox-dispatch', journals[0]!), 'utf8'));
    t.regex(journal.messageId ?? '', /^\d{20}_[0-9A-F]{6}$/, 'the id, not a local-id lookup, finds it next time');
    const second = await pass(gp, outbox, client, { onRefused: (file, reason) => refused.push(`${file}: ${reason}`) });
    t.deepEqual(refused, []);
    t.like(second.sent[0], { file: 'images.bin', chunks: 4, recovered: true });
  } finally {
    client.close();
  }
});
