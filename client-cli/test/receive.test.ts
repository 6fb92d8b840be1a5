import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, renameSync } from 'node:fs';
import { type FileHandle, mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { waitFor } from '../../scripts/services/processes.ts';
import { advanceLifecycle } from '../../server/src/domain/lifecycle.ts';
import { fileTemporaryDirectory } from '../../test/support/temporary-directory.ts';
import { startTestServer, type TestServer } from '../../test/support/harness.ts';
import { mailboxRequest, sendMessage } from '../../test/support/http.ts';
import { overriding } from '../../test/support/overriding.ts';
import { MeshErrorCodes } from '../../shared/src/protocol/index.ts';
import { MeshConnectionError } from '../src/client/errors.ts';
import { MeshClient } from '../src/client/mesh-client.ts';
import { defaultFileName } from '../src/transfer/download.ts';
import { FolderChangedError, sameFolderCheck } from '../src/transfer/folder-identity.ts';
import { receiveInbox } from '../src/transfer/receive.ts';
import { CLAIMS_FOLDER, ReceiveClaims } from '../src/transfer/receive-claims.ts';
import { claimNames, NameClaimedError, UnrelatedFileError } from '../src/transfer/receive-names.ts';
import { noProgress } from '../src/transfer/progress.ts';
import { type InProcessOptions, MAIN, mailboxPair, type MailboxFiles, runInProcess, savedIn } from './support/cli-fixture.ts';

const WORKFLOW = 'PATH_TEST_RESULTS';

let server: TestServer;
const work = fileTemporaryDirectory(test, 'receive-test');

test.before(async () => {
  server = await startTestServer();
});

test.after.always(async () => {
  await server?.close();
});

const pair = () => mailboxPair(server, join(work, 'profiles'));

async function folder(): Promise<string> {
  return mkdtemp(join(work, 'run-'));
}

function as(files: MailboxFiles, args: readonly string[], cwd: string, running?: Pick<InProcessOptions, 'stopSignal' | 'onStdout' | 'onStderr'>) {
  return runInProcess(['--profile', files.profile, ...args], { cwd, ...running });
}

async function sendFile(from: MailboxFiles, to: MailboxFiles, name: string, payload: Buffer, extra: readonly string[] = []): Promise<string> {
  const cwd = await folder();
  await writeFile(join(cwd, name), payload);
  const sent = await as(from, ['send', name, '--to', to.mailbox.id, '--workflow', WORKFLOW, '--json', ...extra], cwd);
  if (sent.code !== 0) throw new Error(`send failed: ${sent.stderr}`);
  return (JSON.parse(sent.stdout) as { messageId: string }).messageId;
}

const inboxOf = async (files: MailboxFiles): Promise<string[]> =>
  (await mailboxRequest(server, files.mailbox, { path: `/messageexchange/${files.mailbox.id}/inbox` })).json().messages;

const readJson = async (path: string): Promise<Record<string, any>> => JSON.parse(await readFile(path, 'utf8'));

/** Has every flush of a folder go through `instead` (given the folder's handle and the real flush) until the returned function is called. */
async function replacingFolderSync(instead: (folder: FileHandle, sync: () => Promise<void>) => Promise<void>): Promise<() => void> {
  // FileHandle's class, reached through a handle.
  const probe = await open(work, 'r');
  const fileHandle = Object.getPrototypeOf(probe) as { sync: (this: FileHandle) => Promise<void> };
  await probe.close();
  const sync = fileHandle.sync;
  fileHandle.sync = async function (this: FileHandle) {
    return (await this.stat()).isDirectory() ? instead(this, () => sync.call(this)) : sync.call(this);
  };
  return () => {
    fileHandle.sync = sync;
  };
}

test.serial('on a file system that cannot flush a folder (EINVAL, as some network and FUSE mounts answer) receive saves and acknowledges all the same, not again at every pass', async (t) => {
  const { lab, gp } = await pair();
  const messageId = await sendFile(lab, gp, 'result.hl7', Buffer.from('MSH|'));
  const into = await folder();
  const restore = await replacingFolderSync(async () => {
    throw Object.assign(new Error('EINVAL: invalid argument, fsync'), { code: 'EINVAL' });
  });
  try {
    const received = await as(gp, ['receive', into, '--json'], work);
    t.is(received.code, 0, received.stderr);
  } finally {
    restore();
  }
  t.is(await readFile(join(into, `${messageId}_result.hl7`), 'utf8'), 'MSH|');
  t.deepEqual(await inboxOf(gp), [], 'acknowledged');
});

test.serial('download flushes the folder once its file is in place, as receive does before it acknowledges: a power cut after `meshbox ack` cannot take the file away', async (t) => {
  const { lab, gp } = await pair();
  const messageId = await sendFile(lab, gp, 'result.hl7', Buffer.from('MSH|'));
  const into = await folder();
  const { ino } = await stat(into);
  let flushedWithFile = false;
  const restore = await replacingFolderSync(async (handle, sync) => {
    if ((await handle.stat()).ino === ino && (await readdir(into)).includes('result.hl7')) flushedWithFile = true;
    return sync();
  });
  try {
    const downloaded = await as(gp, ['download', messageId], into);
    t.is(downloaded.code, 0, downloaded.stderr);
  } finally {
    restore();
  }
  t.true(flushedWithFile);
  t.is(await readFile(join(into, 'result.hl7'), 'utf8'), 'MSH|');
});

test('receive saves every message (chunked and gzipped too, and a report) with its metadata, then acknowledges it', async (t) => {
  const { lab, gp } = await pair();
  const small = randomBytes(3_000);
  const large = randomBytes(250_000);
  const smallId = await sendFile(lab, gp, 'fbc.hl7', small, ['--subject', 'FBC', '--local-id', 'lab-1']);
  const largeId = await sendFile(lab, gp, 'scan.bin', large, ['--chunk-size', '100000', '--gzip', '--checksum']);
  // A non-delivery report for the GP: a message of its own that the laboratory never collected.
  const ignoredId = await sendFile(gp, lab, 'ignored.txt', Buffer.from('never collected'));
  await advanceLifecycle({ ...server.services, now: () => new Date(Date.now() + server.services.periods.inboxExpiryMs + 1000) }, ignoredId);
  const [reportId] = (await inboxOf(gp)).filter((id) => id !== smallId && id !== largeId);
  t.truthy(reportId);

  const into = await folder();
  const received = await as(gp, ['receive', into, '--json'], work);
  t.is(received.code, 0, received.stderr);
  const lines = received.stdout.trim().split('\n').map((line) => JSON.parse(line) as { messageId: string; path?: string });
  t.deepEqual(lines.map((line) => line.messageId).sort(), [smallId, largeId, reportId!].sort());

  t.deepEqual(await readFile(join(into, `${smallId}_fbc.hl7`)), small);
  t.deepEqual(await readFile(join(into, `${largeId}_scan.bin`)), large);
  t.like(await readJson(join(into, `${smallId}.json`)), {
    messageId: smallId,
    messageType: 'DATA',
    from: lab.mailbox.id,
    to: gp.mailbox.id,
    workflowId: WORKFLOW,
    subject: 'FBC',
    localId: 'lab-1',
    fileName: 'fbc.hl7',
    payloadFile: `${smallId}_fbc.hl7`,
    bytes: small.length,
  });
  const largeMetadata = await readJson(join(into, `${largeId}.json`));
  t.like(largeMetadata, { chunks: 3, bytes: large.length });
  t.regex(largeMetadata.verifiedChecksum, /^sha256:[0-9a-f]{64}$/);
  const report = await readJson(join(into, `${reportId}.json`));
  t.like(report, { messageType: 'REPORT', payloadFile: null, bytes: 0, linkedMessageId: ignoredId, statusCode: '14' });
  t.regex(report.statusDescription, /not collected/i);
  t.is(report.mexHeaders['mex-linkedmsgid'], ignoredId);
  t.is(report.mexHeaders['mex-statuscode'], '14');

  t.deepEqual((await readdir(into)).filter((name) => name.startsWith('.')), [], 'no temporary file is left');
  t.deepEqual(await inboxOf(gp), [], 'all acknowledged');
  const again = await as(gp, ['receive', into, '--json'], work);
  t.is(again.code, 0);
  t.is(again.stdout, '', 'nothing new');
});

test('download saves a non-delivery report as receive does: only its description, <ID>.json, and no empty payload file', async (t) => {
  const { lab, gp } = await pair();
  const ignoredId = await sendFile(gp, lab, 'ignored.txt', Buffer.from('never collected'));
  await advanceLifecycle({ ...server.services, now: () => new Date(Date.now() + server.services.periods.inboxExpiryMs + 1000) }, ignoredId);
  const [reportId] = await inboxOf(gp);
  t.truthy(reportId);

  const cwd = await folder();
  const downloaded = await as(gp, ['download', reportId!, '--json'], cwd);
  t.is(downloaded.code, 0, downloaded.stderr);
  const path = join(cwd, `${reportId}.json`);
  t.deepEqual(JSON.parse(downloaded.stdout), { messageId: reportId, messageType: 'REPORT', path, chunks: 0, bytes: 0, verifiedChecksum: null, continuedAfterChunk: 0 });
  t.deepEqual(await readdir(cwd), [`${reportId}.json`]);
  const again = await as(gp, ['download', reportId!], cwd);
  t.is(again.code, 1, 'a file there is not replaced without --overwrite');
  t.regex(again.stderr, /already exists and was left as it is/);

  const into = await folder();
  t.is((await as(gp, ['receive', into], work)).code, 0);
  const { receivedAt: downloadedAt, ...byDownload } = await readJson(path);
  const { receivedAt, ...byReceive } = await readJson(join(into, `${reportId}.json`));
  t.deepEqual(byDownload, byReceive);
  t.like(byDownload, { messageType: 'REPORT', payloadFile: null, bytes: 0, chunks: 0, linkedMessageId: ignoredId, statusCode: '14' });
  for (const at of [downloadedAt, receivedAt]) t.regex(at, /^\d{4}-\d\d-\d\dT/);
});

test('a message whose sender named no file is saved as <ID>.dat, the name the server gives it, not <ID>_<ID>.dat', async (t) => {
  const { lab, gp } = await pair();
  const messageId = await sendMessage(server, lab.mailbox, gp.mailbox, 'unnamed', { 'mex-WorkflowID': WORKFLOW });
  const into = await folder();
  const received = await as(gp, ['receive', into], work);
  t.is(received.code, 0, received.stderr);
  t.is((await readFile(join(into, `${messageId}.dat`))).toString(), 'unnamed');
  t.like(await readJson(join(into, `${messageId}.json`)), { payloadFile: `${messageId}.dat` });
});

test('a message that cannot be saved stays in the inbox while the others are received; exit 1', async (t) => {
  const { lab, gp } = await pair();
  const good = await sendFile(lab, gp, 'good.txt', Buffer.from('fine'));
  // A checksum the content does not match: the download refuses to keep it.
  const bad = await mailboxRequest(server, lab.mailbox, {
    method: 'POST',
    path: `/messageexchange/${lab.mailbox.id}/outbox`,
    headers: { 'mex-To': gp.mailbox.id, 'mex-WorkflowID': WORKFLOW, 'mex-Content-Checksum': `sha256:${'0'.repeat(64)}` },
    body: 'garbled on the way',
  });
  const badId: string = bad.json().message_id;

  const into = await folder();
  const received = await as(gp, ['receive', into], work);
  t.is(received.code, 1);
  t.regex(received.stderr, new RegExp(`checksum mismatch.*message ${badId} stays in the inbox`));
  t.regex(received.stderr, /1 message not received/);
  t.true(received.stdout.includes(good));
  t.deepEqual(await inboxOf(gp), [badId]);
  t.deepEqual((await savedIn(into)).sort(), [`${good}.json`, `${good}_good.txt`]);
});

test('a folder where the .json would go is left as it is: the message is neither saved nor acknowledged, and stays in the inbox', async (t) => {
  const { lab, gp } = await pair();
  const messageId = await sendFile(lab, gp, 'blocked.txt', Buffer.from('kept'));
  const into = await folder();
  await mkdir(join(into, `${messageId}.json`)); // a folder in the way of the metadata file
  const received = await as(gp, ['receive', into], work);
  t.is(received.code, 1);
  t.regex(received.stderr, new RegExp(`${messageId}\\.json is in the folder and is not meshbox's earlier save of message ${messageId}.*message ${messageId} stays in the inbox`));
  t.deepEqual(await inboxOf(gp), [messageId]);
  t.deepEqual(await readdir(into), [`${messageId}.json`], 'nothing written');
});

// A claim whose message was acknowledged by another client of the mailbox, or expired, before a
// receive here finished it is never released by an acknowledgement: it would keep its names from
// other messages, and stay hidden in the folder, for good.
test('receive removes claims left behind for 30 days as it starts a pass; a newer one stays', async (t) => {
  const { lab, gp } = await pair();
  const messageId = await sendFile(lab, gp, 'fbc.hl7', Buffer.from('full blood count'));
  const into = await folder();
  // Left behind by messages gone without their acknowledgement; the old one claims a name of the message sent.
  const claims = await ReceiveClaims.read(into);
  await claims.write({ messageId: '20250101000000000000_0AAAAA', names: [`${messageId}_fbc.hl7`], placed: [] });
  await claims.write({ messageId: '20250101000000000000_0BBBBB', names: ['20250101000000000000_0BBBBB.json'], placed: [] });
  const day = 24 * 60 * 60 * 1000;
  const claimOf = (id: string) => join(into, CLAIMS_FOLDER, `${id}.json`);
  await utimes(claimOf('20250101000000000000_0AAAAA'), new Date(Date.now() - 31 * day), new Date(Date.now() - 31 * day));
  await utimes(claimOf('20250101000000000000_0BBBBB'), new Date(Date.now() - 29 * day), new Date(Date.now() - 29 * day));
  const received = await as(gp, ['receive', into], work);
  t.is(received.code, 0, received.stderr);
  t.is(await readFile(join(into, `${messageId}_fbc.hl7`), 'utf8'), 'full blood count');
  t.deepEqual(await inboxOf(gp), []);
  t.deepEqual(await readdir(join(into, CLAIMS_FOLDER)), ['20250101000000000000_0BBBBB.json']);
});

test("ids that differ only in case share a claim's file (a file system that ignores case would make them one): the second is refused, the first keeps its claim, and only what a run wrote is replaced", async (t) => {
  const into = await folder();
  const claims = await ReceiveClaims.read(into);
  await claimNames(claims, 'abc', ['abc_x.csv', 'abc.json']);
  await writeFile(join(into, 'abc_x.csv'), 'from message abc');
  await claims.placed('abc', 'abc_x.csv');
  await t.throwsAsync(claimNames(claims, 'ABC', ['ABC_y.csv', 'ABC.json']), { instanceOf: NameClaimedError, message: /which message abc \(not yet acknowledged\)/ });
  await claims.release('ABC');
  const again = await ReceiveClaims.read(into);
  t.like(again.filedUnder('abc'), { messageId: 'abc', placed: ['abc_x.csv'] }, 'releasing another id leaves the claim');
  // abc's next run: the payload it wrote is its own to replace; a file at the name it never wrote is not.
  t.deepEqual([...(await claimNames(again, 'abc', ['abc_x.csv', 'abc.json']))], ['abc_x.csv']);
  await writeFile(join(into, 'abc.json'), "the user's");
  await t.throwsAsync(claimNames(again, 'abc', ['abc_x.csv', 'abc.json']), { instanceOf: UnrelatedFileError });
});

test('a listed message expired before it is fetched is skipped as gone, not counted as a failure', async (t) => {
  const { lab, gp } = await pair();
  const [first, second] = [await sendFile(lab, gp, 'a.txt', Buffer.from('a')), await sendFile(lab, gp, 'b.txt', Buffer.from('b'))];
  const client = new MeshClient(gp.settings, { retryDelayMs: 10 });
  // The listing as it was a moment ago: the first message has since expired.
  const staleListing = overriding(client, { listInbox: async () => [first, second] });
  const gone: string[] = [];
  const received: string[] = [];
  try {
    t.true(await server.services.messages.expire((await server.services.messages.get(first))!, '', MeshErrorCodes.undeliveredMessage, new Date()));
    const failed = await receiveInbox(staleListing, {
      folder: await folder(),
      progress: noProgress,
      onReceived: (message) => received.push(message.messageId),
      onFailed: (id, error) => t.fail(`${id}: ${String(error)}`),
      onGone: (id) => gone.push(id),
    });
    t.is(failed, 0);
  } finally {
    client.close();
  }
  t.deepEqual(received, [second]);
  t.deepEqual(gone, [first]);
});

test('a server gone out of reach after the listing ends the pass at the first message, rather than every message failing alike after its own retries', async (t) => {
  const { lab, gp } = await pair();
  const listed = [await sendFile(lab, gp, 'a.txt', Buffer.from('a')), await sendFile(lab, gp, 'b.txt', Buffer.from('b'))];
  const client = new MeshClient(gp.settings, { retryDelayMs: 10 });
  const asked: string[] = [];
  const away = overriding(client, {
    head: async (id: string) => {
      asked.push(id);
      throw new MeshConnectionError(gp.settings.url, Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), { newConnection: true });
    },
  });
  try {
    await t.throwsAsync(
      receiveInbox(away, { folder: await folder(), progress: noProgress, onReceived: () => t.fail('received'), onFailed: () => t.fail('failed alone'), onGone: () => t.fail('gone') }),
      { instanceOf: MeshConnectionError },
    );
  } finally {
    client.close();
  }
  t.deepEqual(asked, listed.slice(0, 1));
  t.deepEqual((await inboxOf(gp)).sort(), [...listed].sort());
});

test('a stop in the middle of a message leaves it unacknowledged in the inbox, with no file, and is not a failure', async (t) => {
  const { lab, gp } = await pair();
  const messageId = await sendFile(lab, gp, 'interrupted.bin', randomBytes(50_000));
  const stop = new AbortController();
  const client = new MeshClient(gp.settings, { retryDelayMs: 10, signal: stop.signal });
  // Stopped right after the message's headers were read, before its download.
  const stoppedAfterHead = overriding(client, {
    head: async (id: string) => {
      const metadata = await client.head(id);
      stop.abort();
      return metadata;
    },
  });
  const into = await folder();
  try {
    const failed = await receiveInbox(stoppedAfterHead, {
      folder: into,
      progress: noProgress,
      signal: stop.signal,
      onReceived: () => t.fail('nothing is received'),
      onFailed: (id, error) => t.fail(`${id}: ${String(error)}`),
      onGone: (id) => t.fail(`${id} gone`),
    });
    t.is(failed, 0);
  } finally {
    client.close();
  }
  t.deepEqual(await savedIn(into), []);
  t.deepEqual(await inboxOf(gp), [messageId]);
});

test('a file saved whose claim then cannot be written (the disk filled meanwhile) is removed again, not left to be refused as another\'s by every later run: once the claim can be written, the message is saved and acknowledged', async (t) => {
  const { lab, gp } = await pair();
  const messageId = await sendFile(lab, gp, 'result.hl7', Buffer.from('OBX|1|NM|K^Potassium||6.9|mmol/L|H'));
  const into = await folder();
  const claims = join(into, CLAIMS_FOLDER);
  const client = new MeshClient(gp.settings, { retryDelayMs: 10 });
  // While the payload downloads, its claim written, the claims folder becomes unwritable (here: a file where it was).
  const claimsUnwritable = overriding(client, {
    downloadRawChunk: async (...args: Parameters<typeof client.downloadRawChunk>) => {
      await rename(claims, join(work, `${messageId}.claims`));
      await writeFile(claims, '');
      return client.downloadRawChunk(...args);
    },
  });
  const receive = (through: MeshClient) =>
    receiveInbox(through, { folder: into, progress: noProgress, onReceived: () => undefined, onFailed: () => undefined, onGone: () => t.fail('gone') });
  try {
    t.is(await receive(claimsUnwritable), 1);
    t.deepEqual(await savedIn(into), [], 'the payload saved is removed again');
    t.deepEqual(await inboxOf(gp), [messageId]);
    await rm(claims);
    await rename(join(work, `${messageId}.claims`), claims);
    t.is(await receive(client), 0);
  } finally {
    client.close();
  }
  t.deepEqual((await savedIn(into)).sort(), [`${messageId}.json`, `${messageId}_result.hl7`]);
  t.deepEqual(await inboxOf(gp), []);
});

test('two receivers on one folder: the second is refused while the first works, so no message is saved twice', async (t) => {
  const { lab, gp } = await pair();
  const messageId = await sendFile(lab, gp, 'once.txt', Buffer.from('once'));
  const into = await folder();
  const client = new MeshClient(gp.settings, { retryDelayMs: 10 });
  const received: string[] = [];
  const pass = () =>
    receiveInbox(client, {
      folder: into,
      progress: noProgress,
      onReceived: (message) => received.push(message.messageId),
      onFailed: (id, error) => t.fail(`${id}: ${String(error)}`),
      onGone: (id) => t.fail(`${id} gone`),
    });
  try {
    const outcomes = await Promise.allSettled([pass(), pass()]);
    const refused = outcomes.filter((outcome) => outcome.status === 'rejected');
    t.is(refused.length, 1);
    t.regex(String((refused[0] as PromiseRejectedResult).reason), /another receiver \(\S+ \d+, host and process\) is working on/);
  } finally {
    client.close();
  }
  t.deepEqual(received, [messageId]);
  t.deepEqual(await readdir(into), [`${messageId}.json`, `${messageId}_once.txt`], 'the lock is released');
});

test('receive refuses a folder another host\'s receiver holds, and takes over the lock of a process of this host that is gone', async (t) => {
  const { lab, gp } = await pair();
  const messageId = await sendFile(lab, gp, 'after-crash.txt', Buffer.from('x'));
  const into = await folder();
  const lock = join(into, '.meshbox-receive.lock');
  await writeFile(lock, `some-other-host ${process.pid}`);
  const held = await as(gp, ['receive', into], work);
  t.is(held.code, 1);
  t.is(
    held.stderr,
    `meshbox: another receiver (some-other-host ${process.pid}, host and process) is working on ${into}: run one per folder ` +
      `(remove ${lock} if no receiver of that host and process is running)\n`,
  );
  t.deepEqual(await inboxOf(gp), [messageId]);

  const gone = spawn(process.execPath, ['-e', '']);
  await once(gone, 'exit');
  await writeFile(lock, `${hostname()} ${gone.pid}`);
  const taken = await as(gp, ['receive', into], work);
  t.is(taken.code, 0, taken.stderr);
  t.deepEqual(await readdir(into), [`${messageId}.json`, `${messageId}_after-crash.txt`], 'released, and nothing left aside');
});

test('a watch stopped while the server is away ends quietly: the request the stop cut short is no failed pass to report', async (t) => {
  const { gp } = await pair();
  const into = await folder();
  const stop = new AbortController();
  // The server is away: its address takes each connection and drops it at once. The stop comes
  // once a second has come, so while the pass is retrying its first request.
  let connections = 0;
  const away = createNetServer((socket) => {
    connections += 1;
    socket.destroy();
  });
  away.listen(0, '127.0.0.1');
  await once(away, 'listening');
  t.teardown(() => away.close());
  const origin = `https://127.0.0.1:${(away.address() as AddressInfo).port}`;
  const watching = as(gp, ['receive', into, '--watch', '--url', origin], work, { stopSignal: stop.signal });
  t.true(await waitFor(async () => connections >= 2, 30_000, 20), 'the first request was tried again');
  stop.abort();
  const result = await watching;
  t.is(result.code, 0, result.stderr);
  t.notRegex(result.stderr, /aborted|looked at again/);
});

test('receive --watch saves what arrives while it runs, and stops cleanly when asked', async (t) => {
  const { lab, gp } = await pair();
  const into = await folder();
  const stop = new AbortController();
  let reported = '';
  const watching = as(gp, ['receive', into, '--watch', '--interval', '1', '--json'], work, {
    stopSignal: stop.signal,
    onStdout: (text) => (reported += text),
  });

  const messageId = await sendFile(lab, gp, 'later.txt', Buffer.from('sent while watching'));
  // Waiting (bounded, not timed) until the watcher reports the message: saved and acknowledged.
  // Its files appear before the acknowledgement, and a stop then would rightly leave it unacknowledged.
  for (let attempt = 0; attempt < 200 && !reported.includes(messageId); attempt++) await sleep(50);
  stop.abort();
  const result = await watching;

  t.is(result.code, 0, result.stderr);
  t.is(await readFile(join(into, `${messageId}_later.txt`), 'utf8'), 'sent while watching');
  t.is((JSON.parse(result.stdout.trim()) as { messageId: string }).messageId, messageId);
  t.deepEqual(await inboxOf(gp), []);
});

test('receive --watch whose folder is replaced under it (a share unmounted, leaving the folder it was mounted on) saves and acknowledges nothing there, and says why', async (t) => {
  const { lab, gp } = await pair();
  const into = await folder();
  const stop = new AbortController();
  let reported = '';
  let problems = '';
  const watching = as(gp, ['receive', into, '--watch', '--interval', '1', '--json'], work, {
    stopSignal: stop.signal,
    onStdout: (text) => (reported += text),
    onStderr: (text) => (problems += text),
  });
  const first = await sendFile(lab, gp, 'first.txt', Buffer.from('onto the share'));
  for (let attempt = 0; attempt < 200 && !reported.includes(first); attempt++) await sleep(50);
  t.true(reported.includes(first));

  // Another folder at its path, as the unmount leaves the local one.
  await rename(into, `${into}.share`);
  await mkdir(into);
  const second = await sendFile(lab, gp, 'second.txt', Buffer.from('must not land on the local disk'));
  for (let attempt = 0; attempt < 200 && !problems.includes('no longer the folder'); attempt++) await sleep(50);
  stop.abort();
  await watching;

  t.regex(problems, new RegExp(`${into.replaceAll('/', '\\/')} is no longer the folder this run began with \\(a share unmounted, or mounted anew\\?\\)`));
  t.deepEqual(await readdir(into), [], 'nothing saved on the local disk');
  t.deepEqual(await inboxOf(gp), [second], 'nor acknowledged');
  t.false(reported.includes(second));
});

test('a receive folder replaced mid-pass (a share unmounted between two messages) gets nothing more: the pass stops, the next message is neither saved there nor acknowledged', async (t) => {
  const { lab, gp } = await pair();
  const into = await folder();
  const [first, second] = [await sendFile(lab, gp, 'first.txt', Buffer.from('onto the share')), await sendFile(lab, gp, 'second.txt', Buffer.from('must not land on the local disk'))];
  const client = new MeshClient(gp.settings, { retryDelayMs: 10 });
  const received: string[] = [];
  try {
    const pass = receiveInbox(client, {
      folder: into,
      sameFolder: sameFolderCheck(into, await stat(into)),
      progress: noProgress,
      onReceived: (message) => {
        received.push(message.messageId);
        // Another folder at its path, as an unmount leaves the local one: at once, before the next message.
        renameSync(into, `${into}.share`);
        mkdirSync(into);
      },
      onFailed: (id, error) => t.fail(`${id}: ${String(error)}`),
      onGone: (id) => t.fail(`${id} gone`),
    });
    await t.throwsAsync(pass, { instanceOf: FolderChangedError, message: /is no longer the folder this run began with/ });
  } finally {
    client.close();
  }
  t.deepEqual(received, [first]);
  t.deepEqual(await readdir(into), [], 'nothing saved on the local disk');
  t.deepEqual(await inboxOf(gp), [second], 'nor acknowledged');
});

test('a message saved as its folder went (the share gone while it was written) is not acknowledged: it stays in the inbox, to be saved again there', async (t) => {
  const { lab, gp } = await pair();
  const into = await folder();
  const messageId = await sendFile(lab, gp, 'result.txt', Buffer.from('saved, then the share went'));
  const client = new MeshClient(gp.settings, { retryDelayMs: 10 });
  // The folder is there at the pass's start and the message's, and gone by its acknowledgement.
  let checks = 0;
  const goneAtThirdCheck = async (): Promise<void> => {
    checks += 1;
    if (checks >= 3) throw new FolderChangedError(`${into} is gone`);
  };
  try {
    const pass = receiveInbox(client, {
      folder: into,
      sameFolder: goneAtThirdCheck,
      progress: noProgress,
      onReceived: () => t.fail('nothing is received'),
      onFailed: (id, error) => t.fail(`${id}: ${String(error)}`),
      onGone: (id) => t.fail(`${id} gone`),
    });
    await t.throwsAsync(pass, { instanceOf: FolderChangedError });
  } finally {
    client.close();
  }
  t.is(checks, 3);
  t.true((await readdir(into)).includes(`${messageId}.json`), 'its files were written');
  t.deepEqual(await inboxOf(gp), [messageId], 'not acknowledged');
});

test('receive --watch as its own process ends with exit 0 on SIGTERM', async (t) => {
  const { lab, gp } = await pair();
  const into = await folder();
  const watcher = spawn(process.execPath, [MAIN, '--profile', gp.profile, 'receive', into, '--watch', '--interval', '1'], {
    env: { PATH: process.env.PATH },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  watcher.stdout.on('data', (data: Buffer) => (stdout += data.toString()));
  const messageId = await sendFile(lab, gp, 'ping.txt', Buffer.from('ping'));
  // Bounded waiting, not timing: starting a CLI process has taken over 30 s on a loaded CI run.
  for (let attempt = 0; attempt < 1800 && !stdout.includes(messageId); attempt++) await sleep(50);
  const exited = once(watcher, 'exit');
  watcher.kill('SIGTERM');
  const [code, signal] = await exited;
  t.is(signal, null, 'it handled the signal rather than being killed by it');
  t.is(code, 0);
  t.true(stdout.includes(messageId));
});

test('a file name too long for the file system (MESH allows 300 characters) is shortened, keeping its extension', async (t) => {
  const { lab, gp } = await pair();
  const longName = `${'résultat-'.repeat(32)}.hl7`;
  t.true(longName.length <= 300 && Buffer.byteLength(longName) > 255);
  const messageId = await sendFile(lab, gp, 'short.hl7', Buffer.from('MSH|'), ['--file-name', longName]);
  const into = await folder();
  const received = await as(gp, ['receive', into], work);
  t.is(received.code, 0, received.stderr);
  const [saved] = (await readdir(into)).filter((name) => !name.endsWith('.json'));
  t.true(saved!.startsWith(`${messageId}_résultat-`));
  t.true(saved!.endsWith('.hl7'));
  t.true(Buffer.byteLength(saved!) <= 240);
  t.is(await readFile(join(into, saved!), 'utf8'), 'MSH|');
  t.is((await readJson(join(into, `${messageId}.json`))).fileName, longName, 'the metadata keeps the name as sent');
});

test("a name shortened to fit never ends in an extension the sender did not give: one too long to keep, cut through, loses its dot (receive and download)", async (t) => {
  const { lab, gp } = await pair();
  // Padded so that the cut falls just after `.exe`: receive's `<message id>_` takes 28 of the 240 bytes, download's nothing.
  const forReceive = `results${'x'.repeat(240 - 28 - 'results.exe'.length)}.exe${'y'.repeat(13)}`;
  const forDownload = `${'x'.repeat(240 - '.bat'.length)}.bat${'y'.repeat(13)}`;
  const received = await sendFile(lab, gp, 'scan.dat', Buffer.from('MZ'), ['--file-name', forReceive]);
  const into = await folder();
  const receiving = await as(gp, ['receive', into], work);
  t.is(receiving.code, 0, receiving.stderr);
  const [saved] = (await readdir(into)).filter((name) => name !== `${received}.json`);
  t.is(saved, `${received}_results${'x'.repeat(240 - 28 - 'results.exe'.length)}_exe`);
  const downloaded = await sendFile(lab, gp, 'scan.dat', Buffer.from('MZ'), ['--file-name', forDownload]);
  const cwd = await folder();
  const download = await as(gp, ['download', downloaded, '--quiet'], cwd);
  t.is(download.code, 0, download.stderr);
  t.is(download.stdout.trim(), join(cwd, `${'x'.repeat(240 - '.bat'.length)}_bat`));
});

test('receive refuses a folder that is not there, a bad --interval, and --interval without --watch', async (t) => {
  const { gp } = await pair();
  const missing = await as(gp, ['receive', join(work, 'no-such-folder')], work);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /^meshbox: \S+no-such-folder does not exist \(receive does not create it\): check the path, or make the folder\n$/);
  const file = join(work, 'a-file.txt');
  await writeFile(file, 'not a folder');
  const notFolder = await as(gp, ['receive', file], work);
  t.is(notFolder.code, 1);
  t.is(notFolder.stderr, `meshbox: ${file} is not a folder\n`);
  for (const interval of ['soon', '0.1', '0']) {
    const bad = await as(gp, ['receive', work, '--watch', '--interval', interval], work);
    t.is(bad.code, 2, interval);
    t.regex(bad.stderr, /Give a whole number of seconds from 1/);
  }
  const withoutWatch = await as(gp, ['receive', work, '--interval', '5'], work);
  t.is(withoutWatch.code, 2, 'a usage error');
  t.regex(withoutWatch.stderr, /--interval needs --watch/);
});

test('a sender\'s file name cannot pick a folder, open an NTFS stream or disguise its extension', (t) => {
  const id = '20261129000000000000_ABCDEF';
  t.is(defaultFileName('../../etc/passwd', id), 'passwd');
  t.is(defaultFileName('C:\\results\\fbc.csv', id), 'fbc.csv');
  t.is(defaultFileName('report.txt:hidden', id), 'report.txt_hidden');
  t.is(defaultFileName('invoice\u202Efdp.exe', id), 'invoice_fdp.exe');
  t.is(defaultFileName('tab\there\u0085.csv', id), 'tabhere.csv');
  t.is(defaultFileName('trailing. . ', id), 'trailing');
  for (const empty of ['', '.', '..', '/', '...']) t.is(defaultFileName(empty, id), `${id}.dat`, JSON.stringify(empty));
});

test('receive --workflow takes only the messages its MESH filter selects; the rest stay in the inbox', async (t) => {
  const { lab, gp } = await pair();
  const results = await sendFile(lab, gp, 'fbc.hl7', Buffer.from('result'));
  const cwd = await folder();
  await writeFile(join(cwd, 'order.txt'), 'order');
  const sent = await as(lab, ['send', 'order.txt', '--to', gp.mailbox.id, '--workflow', 'PATH_TEST_ORDERS'], cwd);
  t.is(sent.code, 0, sent.stderr);
  const order = sent.stdout.trim();

  const into = await folder();
  const received = await as(gp, ['receive', into, '--workflow', '*RESULTS*', '--json'], work);
  t.is(received.code, 0, received.stderr);
  t.deepEqual(received.stdout.trim().split('\n').map((line) => (JSON.parse(line) as { messageId: string }).messageId), [results]);
  t.deepEqual(await inboxOf(gp), [order]);
});

test('receive removes what a run of its own cut short left for a message, and nothing of anyone else\'s', async (t) => {
  const { lab, gp } = await pair();
  const id = await sendFile(lab, gp, 'fbc.hl7', Buffer.from('full blood count'));
  const into = await folder();
  const leftover = `.${id}_fbc.hl7.0badc0de.part`;
  // A `meshbox download` writing into the same folder meanwhile: its temporary file is its own.
  const othersDownload = '.report.csv.1234abcd.part';
  await writeFile(join(into, leftover), 'full blo');
  await writeFile(join(into, othersDownload), 'half a report');
  const received = await as(gp, ['receive', into], into);
  t.is(received.code, 0, received.stderr);
  const left = await readdir(into);
  t.false(left.includes(leftover));
  t.true(left.includes(othersDownload));
  t.true(left.includes(`${id}_fbc.hl7`));
});
