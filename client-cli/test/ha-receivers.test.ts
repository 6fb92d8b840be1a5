// Receiving run highly available: two receivers of one mailbox (two hosts, or a restart
// overlapping the old process), into one shared folder or two.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { advanceLifecycle } from '../../server/src/domain/lifecycle.ts';
import { fileTemporaryDirectory } from '../../test/support/temporary-directory.ts';
import { startTestServer, type TestServer } from '../../test/support/harness.ts';
import { isGone } from '../src/client/errors.ts';
import { MeshClient } from '../src/client/mesh-client.ts';
import { continuableNames } from '../src/transfer/partial-download.ts';
import { noProgress, type ProgressFactory } from '../src/transfer/progress.ts';
import { receiveInbox, watchInbox } from '../src/transfer/receive.ts';
import { sendFile } from '../src/transfer/upload.ts';
import { mailboxPair, type MailboxFiles, startCliProcess } from './support/cli-fixture.ts';

const WORKFLOW = 'PATH_TEST_RESULTS';

let server: TestServer;
const work = fileTemporaryDirectory(test, 'ha-receivers');

test.before(async () => {
  server = await startTestServer();
});

test.after.always(async () => {
  await server?.close();
});

const pair = () => mailboxPair(server, join(work, 'profiles'));

async function sendScan(lab: MailboxFiles, gp: MailboxFiles, payload: Buffer, chunkSize: number): Promise<string> {
  const source = join(work, `scan-${randomBytes(4).toString('hex')}.bin`);
  await writeFile(source, payload);
  const sender = new MeshClient(lab.settings);
  try {
    const sent = await sendFile(sender, { path: source, chunkSize, gzip: false, checksum: true, progress: noProgress, message: { to: gp.mailbox.id, workflowId: WORKFLOW, fileName: 'scan.bin' } });
    return sent.messageId;
  } finally {
    sender.close();
  }
}

const quiet = (t: { fail: (message: string) => void }) => ({
  progress: noProgress,
  onReceived: () => undefined,
  onFailed: (id: string, error: unknown) => t.fail(`${id}: ${String(error)}`),
  onGone: () => undefined,
});

// Active/active: receiver A (folder A) is cut short in a message of several chunks and keeps its
// whole chunks; receiver B (folder B) saves that message and acknowledges it. A's kept chunks
// can never be continued. receive.ts: "Chunks kept of a message no longer listed (acknowledged
// by another client, expired) would stay hidden in the folder for good: removed, with its claim,
// once the server says the message is gone." A --watch looks at its folder only on its first
// pass (folderKnownClean): while the payload is still served (a day), HEAD says not gone, and
// after that the watch never looks again.
test('a watch whose kept chunks belong to a message another receiver acknowledged removes them once the server says it is gone, not only after a restart', async (t) => {
  const { lab, gp } = await pair();
  const messageId = await sendScan(lab, gp, randomBytes(600_000), 200_000);
  const folderA = await mkdtemp(join(work, 'a-'));
  const folderB = await mkdtemp(join(work, 'b-'));

  // A is stopped (a kill, a network loss past its retries) after chunk 2 of 3.
  const stopA = new AbortController();
  const clientA = new MeshClient(gp.settings, { signal: stopA.signal, retryDelayMs: 10 });
  const stoppingProgress: ProgressFactory = () => ({
    update: (value) => {
      if (value >= 2) stopA.abort();
    },
    note: () => undefined,
    stop: () => undefined,
  });
  let stoppedIn: string | undefined;
  await receiveInbox(clientA, { ...quiet(t), folder: folderA, progress: stoppingProgress, signal: stopA.signal, onStopped: (id) => (stoppedIn = id) });
  clientA.close();
  t.is(stoppedIn, messageId);
  const { note, partial } = continuableNames(join(folderA, `${messageId}_scan.bin`), messageId);
  t.true((await readdir(folderA)).includes(note), 'A kept whole chunks');

  // B, into its own folder, saves the message and acknowledges it.
  const clientB = new MeshClient(gp.settings, { retryDelayMs: 10 });
  const savedByB: string[] = [];
  await receiveInbox(clientB, { ...quiet(t), folder: folderB, onReceived: (message) => savedByB.push(message.messageId) });
  t.deepEqual(savedByB, [messageId]);

  // A is back, watching.
  const stopWatch = new AbortController();
  const watcher = new MeshClient(gp.settings, { signal: stopWatch.signal, retryDelayMs: 10 });
  let passes = 0;
  const watching = watchInbox(watcher, {
    ...quiet(t),
    folder: folderA,
    intervalMs: 100,
    signal: stopWatch.signal,
    beforePass: async () => {
      passes += 1;
    },
    onPassFailed: (error) => t.fail(String(error)),
  });
  try {
    while (passes < 3) await sleep(20);
    // A day on, the acknowledged message's payload is purged: the server now answers 410 for it.
    await advanceLifecycle({ ...server.services, now: () => new Date(Date.now() + server.services.periods.payloadRetentionMs + 60_000) }, messageId);
    const head = await clientB.head(messageId).then(
      () => 'described',
      (error: unknown) => (isGone(error) ? 'gone' : String(error)),
    );
    t.is(head, 'gone', 'the server says the message is gone');
    const after = passes;
    while (passes < after + 5) await sleep(20);
  } finally {
    stopWatch.abort();
    await watching;
    watcher.close();
    clientB.close();
  }
  const left = (await readdir(folderA)).filter((name) => name === note || name === partial);
  t.deepEqual(left, [], 'what A kept of a message gone is removed by the watch');
});

// Active/passive on one shared folder (or a restart overlapping the old process): receiver A is
// killed (-9) as it puts a message's .json in place; receiver B, a --watch past its first pass on
// the same folder, takes over A's lock, saves the message and acknowledges it. What A's kill left
// (its hidden .json draft) is "removed before it saves a message" (README) only when the folder
// is read: B's watch takes the folder for clean (folderKnownClean) and leaves it, and once the
// message is acknowledged no later run of anyone removes it (it removes only those of messages it
// saves).
test('a watch that takes over the lock of a receiver killed mid-message on the same folder removes what that kill left before saving the message', async (t) => {
  const { lab, gp } = await pair();
  const folder = await mkdtemp(join(work, 'shared-'));

  // B watches the folder; its second pass waits until A has been killed.
  let passes = 0;
  let openGate: () => void = () => undefined;
  const gate = new Promise<void>((done) => (openGate = done));
  const stopWatch = new AbortController();
  const watcher = new MeshClient(gp.settings, { signal: stopWatch.signal, retryDelayMs: 10 });
  const savedByB: string[] = [];
  const watching = watchInbox(watcher, {
    ...quiet(t),
    folder,
    intervalMs: 50,
    signal: stopWatch.signal,
    onReceived: (message) => savedByB.push(message.messageId),
    beforePass: async () => {
      passes += 1;
      if (passes >= 2) await gate;
    },
    onPassFailed: (error) => t.fail(String(error)),
  });
  let messageId: string;
  try {
    while (passes < 2) await sleep(20);
    messageId = await sendScan(lab, gp, randomBytes(3_000), 1_000_000);
    const killAt = { op: 'link', match: `${basename(folder)}/\\.${messageId}\\.json\\.[0-9a-f]{8}\\.part -> ` };
    // Killed by itself just before it links the .json draft into place.
    const killed = await startCliProcess(['--profile', gp.profile, 'receive', folder], { cwd: work, env: { MESHBOX_TEST_KILL_AT: JSON.stringify(killAt) } }).exited;
    t.is(killed.signal, 'SIGKILL', killed.stderr);
    const draft = (await readdir(folder)).filter((name) => name.startsWith(`.${messageId}.json.`));
    t.is(draft.length, 1, 'A left its .json draft');
    openGate();
    while (savedByB.length === 0 || passes < 5) await sleep(20);
  } finally {
    openGate();
    stopWatch.abort();
    await watching;
    watcher.close();
  }
  t.deepEqual(savedByB, [messageId!]);
  t.deepEqual(
    (await readdir(folder)).filter((name) => name !== '.meshbox-receive.lock').sort(),
    [`${messageId!}.json`, `${messageId!}_scan.bin`].sort(),
    'nothing of the killed run is left hidden',
  );
});
