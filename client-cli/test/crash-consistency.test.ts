/**
 * Crash consistency of `dispatch` and `receive`: each test runs the CLI as a real process and
 * kills it (SIGKILL) at a chosen moment, either when a proxy in front of the real server has
 * stalled a given request, or (support/kill-at.mjs) just before a given file-system step;
 * then runs it again and checks the outcome against the real server.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, statfs, utimes, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { fileTemporaryDirectory } from '../../test/support/temporary-directory.ts';
import { startTestServer, type TestServer } from '../../test/support/harness.ts';
import { mailboxRequest } from '../../test/support/http.ts';
import { MeshClient } from '../src/client/mesh-client.ts';
import { readJournal } from '../src/transfer/dispatch/journal.ts';
import { continuableNames } from '../src/transfer/partial-download.ts';
import { CLAIMS_FOLDER } from '../src/transfer/receive-claims.ts';
import { noProgress } from '../src/transfer/progress.ts';
import { sendFile } from '../src/transfer/upload.ts';
import { mailboxPair, type MailboxFiles, type RunningCli, startCliProcess } from './support/cli-fixture.ts';
import { type ProxyAction, startStallProxy } from './support/stall-proxy.ts';

const WORKFLOW = 'PATH_TEST_RESULTS';

let server: TestServer;
const work = fileTemporaryDirectory(test, 'crash');

test.before(async () => {
  server = await startTestServer();
});

test.after.always(async () => {
  await server?.close();
});

const pair = () => mailboxPair(server, join(work, 'profiles'));

/** The CLI as its own process, in the test's folder. */
function startCli(args: readonly string[], env: Record<string, string> = {}): RunningCli {
  return startCliProcess(args, { cwd: work, env });
}

async function kill9(running: RunningCli) {
  running.child.kill('SIGKILL');
  return running.exited;
}

const runCli = (args: readonly string[], env: Record<string, string> = {}) => startCli(args, env).exited;

/** A file put into the outbox a minute ago (settled), its control file first. */
async function put(outbox: string, name: string, payload: Buffer, control?: unknown): Promise<void> {
  const aMinuteAgo = new Date(Date.now() - 60_000);
  if (control !== undefined) {
    const controlFile = join(outbox, `${name}.ctl.json`);
    await writeFile(controlFile, JSON.stringify(control));
    await utimes(controlFile, aMinuteAgo, aMinuteAgo);
  }
  await writeFile(join(outbox, name), payload);
  await utimes(join(outbox, name), aMinuteAgo, aMinuteAgo);
}

const inboxOf = async (files: MailboxFiles): Promise<string[]> =>
  (await mailboxRequest(server, files.mailbox, { path: `/messageexchange/${files.mailbox.id}/inbox` })).json().messages;

function proxyFor(files: MailboxFiles, decide: (method: string, url: string) => ProxyAction) {
  return startStallProxy(server.ca, server.origin, { certPem: files.mailbox.certPem, keyPem: files.mailbox.keyPem, caPem: server.caPem }, decide);
}

/** Decides `action` for the first request matching, `pass` for every other. */
function firstOnly(matches: (method: string, url: string) => boolean, action: ProxyAction) {
  let done = false;
  return (method: string, url: string): ProxyAction => {
    if (done || !matches(method, url)) return 'pass';
    done = true;
    return action;
  };
}

/**
 * A wait that fails the test after 90 s instead of holding the run for ever: each starts a CLI
 * process, which a machine running other test files at once (two cores) has taken over 30 s to do.
 */
function bounded<T>(promise: Promise<T>, what: string): Promise<T> {
  return Promise.race([promise, sleep(90_000, undefined, { ref: false }).then(() => Promise.reject(new Error(`gave up waiting for ${what}`)))]);
}

/** Runs the CLI through a proxy that loses the answer to the first request `matches` picks, and kills it there. */
async function killWhenAnswerLost(files: MailboxFiles, args: readonly string[], matches: (method: string, url: string) => boolean): Promise<void> {
  const proxy = await proxyFor(files, firstOnly(matches, 'answerLost'));
  try {
    const running = startCli(['--url', proxy.origin, ...args]);
    await bounded(proxy.stalled((event) => event.action === 'answerLost'), 'the answer to be lost');
    await kill9(running);
  } finally {
    await proxy.close();
  }
}

const isSend = (lab: MailboxFiles) => (method: string, url: string) => method === 'POST' && url === `/messageexchange/${lab.mailbox.id}/outbox`;

/**
 * `decide`, behind a _ping answered as a MESH server that does not tell a send repeated with its
 * token the first try's message would answer it: the CLI then never repeats a send that may have arrived.
 */
function withoutIdempotentSends(decide: (method: string, url: string) => ProxyAction) {
  return (method: string, url: string): ProxyAction => (url === '/messageexchange/_ping' ? { answer: { status: 'ok' } } : decide(method, url));
}

// A send whose request reached the server, but which the server has not recorded yet when the
// killed dispatcher is started again, must not be sent a second time.
test('kill -9 while the server still works on a one-chunk send: the restarted dispatcher waits, finds it once recorded, and the recipient gets it once', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const payload = randomBytes(2_000);
  await put(outbox, 'result.hl7', payload);
  // The server (or the load balancer before it) has the whole request and has not acted on it yet.
  const proxy = await proxyFor(lab, firstOnly(isSend(lab), 'hold'));
  try {
    const first = startCli(['--profile', lab.profile, '--url', proxy.origin, 'dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--watch']);
    await bounded(proxy.stalled((event) => event.action === 'hold'), 'the send to reach the server');
    await kill9(first);
    // systemd (Restart=on-failure) starts it again; the server has not finished the first request yet.
    const second = await runCli(['--profile', lab.profile, 'dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--json']);
    t.is(second.code, 1);
    t.regex(second.stderr, /result\.hl7 went at .* and its answer never came; no message carries its local id dispatch-[0-9a-f]+ yet\. It is not sent again before .*; a pass from then looks for it once more, and sends it if no message carries it/);
    t.true((await readdir(outbox)).includes('result.hl7'), 'it waits in the outbox');
    // The first request now completes on the server.
    t.deepEqual(await proxy.releaseHeld(), [202], 'the first send is accepted once it reaches the server');
  } finally {
    await proxy.close();
  }
  const third = await runCli(['--profile', lab.profile, 'dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--json']);
  // Its stderr says why, should it fail: there is no receipt to read then.
  if (third.code !== 0) return t.fail(`the third run exited ${third.code}: ${third.stderr}`);
  t.like(JSON.parse(third.stdout), { file: 'result.hl7', recovered: true });
  t.is((await inboxOf(gp)).length, 1, 'the file went once');
});

// The same race without any kill: the answer stalls past --timeout, and --watch's next pass
// finds nothing under the local id yet: it must not take that for a send that never went.
test('a one-chunk send whose answer stalls past --timeout is not sent again by the next --watch passes while the first is still in hand at a server that does not hold sends to their token', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'result.hl7', randomBytes(2_000));
  const args = ['--profile', lab.profile, 'dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW];
  const proxy = await proxyFor(lab, withoutIdempotentSends(firstOnly(isSend(lab), 'hold')));
  try {
    const watching = startCli(['--url', proxy.origin, '--timeout', '2', ...args, '--watch', '--interval', '1']);
    await bounded(proxy.stalled((event) => event.action === 'hold'), 'the send to reach the server');
    // Passes go by (a second apart, then backing off) while the server still holds the first request.
    for (let i = 0; i < 300 && !/It is not sent again before /.test(watching.output().stderr); i += 1) await sleep(100);
    watching.child.kill('SIGTERM');
    await bounded(watching.exited, 'the watch to stop');
    t.regex(watching.output().stderr, /It is not sent again before /);
    t.true((await readdir(outbox)).includes('result.hl7'), 'not sent again meanwhile');
    t.deepEqual(await proxy.releaseHeld(), [202], 'the first send is accepted once it reaches the server');
  } finally {
    await proxy.close();
  }
  // Once the server has it, a run finds it by its local id and finishes it.
  const finished = await runCli([...args, '--json']);
  t.is(finished.code, 0, finished.stderr);
  t.true((await readdir(join(outbox, 'sent'))).some((name) => name.endsWith('_result.hl7')), 'finished by a later pass');
  t.is((await inboxOf(gp)).length, 1, 'the file went once');
});

// The same, at meshbox: the repeat of the send, with its token, reaches the server first and is
// sent; the first try, arriving after it, is told that message.
test('a one-chunk send whose answer stalls past --timeout at meshbox is asked again with its token; the first try, arriving later, is told the same message: sent once', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'result.hl7', randomBytes(2_000));
  const proxy = await proxyFor(lab, firstOnly(isSend(lab), 'hold'));
  let run;
  try {
    const running = startCli(['--profile', lab.profile, '--url', proxy.origin, '--timeout', '2', 'dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--json']);
    await bounded(proxy.stalled((event) => event.action === 'hold'), 'the send to reach the server');
    run = await bounded(running.exited, 'the dispatch to end');
    // The load balancer passes the first try on at last: the same token and headers.
    t.deepEqual(await proxy.releaseHeld(), [202]);
  } finally {
    await proxy.close();
  }
  t.is(run.code, 0, run.stderr);
  const receipt = JSON.parse(run.stdout) as { messageId: string; file: string };
  t.is(receipt.file, 'result.hl7');
  t.deepEqual(await inboxOf(gp), [receipt.messageId], 'the file went once');
});

// Every try held at the load balancer (none reaches meshbox, each could yet): the file waits
// for the last try to have surely ended, not only the first.
test('a one-chunk send whose every try stalls: the in-doubt wait is counted from the last repeat, each noted before it goes', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'result.hl7', randomBytes(2_000));
  const seen: number[] = [];
  const proxy = await proxyFor(lab, (method, url) => {
    if (!isSend(lab)(method, url)) return 'pass';
    seen.push(Date.now());
    return 'hold';
  });
  let run;
  try {
    // Long enough for each try's connection and handshake on a loaded host: a try timed out before it reached the proxy would go unseen.
    run = await bounded(runCli(['--profile', lab.profile, '--url', proxy.origin, '--timeout', '8', 'dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--retries', '2']), 'the dispatch to give up');
  } finally {
    await proxy.close();
  }
  t.is(run.code, 1);
  t.regex(run.stderr, /may have been delivered all the same/);
  t.is(seen.length, 3, 'the first try and two repeats');
  const journal = await readJournal(outbox, 'result.hl7');
  t.truthy(journal?.attemptedAt);
  t.true(journal!.attemptedAt! > seen[1]! && journal!.attemptedAt! <= seen[2]!, `noted at ${journal?.attemptedAt}, the tries seen at ${seen.join(', ')}`);
  t.deepEqual(await inboxOf(gp), []);
});

// A kill between moving a refused file into failed/ and moving its control file: the next pass
// finishes the move, so the next file of that name is not sent with the old control file.
test('kill -9 between moving a refused file and its control file into failed/: the next run moves the control file too, and the next file of that name goes to --to', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'result.hl7', Buffer.from('first result'), { to: 'X99NOSUCH', workflowId: WORKFLOW });
  const args = ['--profile', lab.profile, 'dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW];
  const killed = await runCli(args, { MESHBOX_TEST_KILL_AT: JSON.stringify({ op: 'rename', match: 'result\\.hl7\\.ctl\\.json -> .*/failed/' }) });
  t.is(killed.signal, 'SIGKILL', killed.stderr);
  const again = await runCli(args);
  t.log('run after the kill:', again.code, again.stderr.trim());
  t.log('outbox after it:', await readdir(outbox));
  // The laboratory system drops its next result under the same name, for the default recipient.
  await put(outbox, 'result.hl7', Buffer.from('second result'));
  const next = await runCli(args);
  t.log('next file:', next.code, next.stdout.trim(), next.stderr.trim());
  t.false((await readdir(outbox)).includes('result.hl7.ctl.json'), 'no control file is left behind for a file that is gone');
  t.is((await inboxOf(gp)).length, 1, 'the second result went to --to');
});

// The same after a send found again by its local id (its id never journalled): the control file
// left behind by a kill in the finish must not send the next file of that name to the old recipient.
test('lost answer, then kill -9 in the finish: the next run removes the control file, and the next file of that name goes to --to, not to the earlier recipient', async (t) => {
  const { lab, gp } = await pair();
  const other = (await pair()).gp;
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'result.hl7', Buffer.from('result for practice A'), { to: other.mailbox.id, workflowId: WORKFLOW });
  const args = ['--profile', lab.profile, 'dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW];
  await killWhenAnswerLost(lab, args, isSend(lab));
  // Found again by its local id; killed after the file moved into sent/, before its control file went.
  const finishing = await runCli(args, { MESHBOX_TEST_KILL_AT: JSON.stringify({ op: 'rm', match: 'result\\.hl7\\.ctl\\.json' }) });
  t.is(finishing.signal, 'SIGKILL', finishing.stderr);
  const after = await runCli(args);
  t.is(after.code, 0, after.stderr);
  t.log('outbox after the next run:', await readdir(outbox));
  await put(outbox, 'result.hl7', Buffer.from('result for practice B (the --to default)'));
  const next = await runCli([...args, '--json']);
  t.log('next file:', next.code, next.stdout.trim(), next.stderr.trim());
  t.is((await inboxOf(other)).length, 1, 'practice A got its one result only');
  t.is((await inboxOf(gp)).length, 1, 'practice B got the second result');
});

// A lock left by a killed dispatcher whose process number is in use again (after a reboot) is stale.
test('a dispatcher killed by a power cut leaves a lock; after the reboot its pid belongs to another process, and the lock is taken over', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const args = ['--profile', lab.profile, 'dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW];
  // Killed while it holds the lock: at its first look into its own folders.
  const killed = await runCli(args, { MESHBOX_TEST_KILL_AT: JSON.stringify({ op: 'readdir', match: 'sent$' }) });
  t.is(killed.signal, 'SIGKILL', killed.stderr);
  const left = await readFile(join(outbox, '.meshbox-dispatch.lock'), 'utf8');
  const lock = join(outbox, '.meshbox-dispatch.lock');
  t.log('lock left:', left);
  // After a reboot pids start again from 1: the dead dispatcher's number now names some other
  // process (a daemon, a kernel thread). Played here by a process of this test.
  const unrelated = spawn('sleep', ['30']);
  try {
    const [host, , token] = left.split(' ');
    await writeFile(lock, `${host} ${unrelated.pid} ${token}`);
    await put(outbox, 'after-reboot.hl7', Buffer.from('result'));
    const next = await runCli(args);
    t.log('after the reboot:', next.code, next.stderr.trim());
    t.is(next.code, 0);
    t.is((await inboxOf(gp)).length, 1);
  } finally {
    unrelated.kill();
  }
});

// A receive killed in the middle of a message of many chunks (a multi-GB one is often cut short
// somewhere) continues after the whole chunks it had saved, leaving nothing hidden behind.
/** Sends `payload` from lab to gp as `scan.bin`, in chunks of `chunkSize`, with its checksum; its message id. */
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

test('receive killed in chunk 3 of 3: the next run fetches only chunk 3, saves the message whole and leaves nothing hidden', async (t) => {
  const { lab, gp } = await pair();
  const folder = await mkdtemp(join(work, 'incoming-'));
  const payload = randomBytes(600_000);
  const messageId = await sendScan(lab, gp, payload, 200_000);
  const proxy = await proxyFor(gp, firstOnly((method, url) => method === 'GET' && url.endsWith(`/inbox/${messageId}/3`), { cutBody: 50_000 }));
  try {
    const receiving = startCli(['--profile', gp.profile, '--url', proxy.origin, 'receive', folder, '--watch']);
    await bounded(proxy.stalled(() => true), 'the download to be cut');
    await kill9(receiving);
  } finally {
    await proxy.close();
  }
  const { partial, note, lock } = continuableNames(join(folder, `${messageId}_scan.bin`), messageId);
  t.deepEqual((await readdir(folder)).sort(), ['.meshbox-receive.lock', CLAIMS_FOLDER, lock, note, partial].sort(), 'what a kill leaves: the locks, the claim, the partial file and its note');
  t.like(JSON.parse(await readFile(join(folder, note), 'utf8')), { messageId, chunks: 2, bytes: 400_000 });

  const watching = await proxyFor(gp, () => 'pass');
  try {
    const again = await runCli(['--profile', gp.profile, '--url', watching.origin, 'receive', folder]);
    t.is(again.code, 0, again.stderr);
    t.deepEqual(
      watching.events.filter((event) => event.url.includes(`/inbox/${messageId}`)).map((event) => `${event.method} ${event.url.replace(/^.*\/inbox\//, '')}`),
      ['HEAD ' + messageId, 'GET ' + messageId, `GET ${messageId}/3`, `PUT ${messageId}/status/acknowledged`],
      'chunk 1 only for its headers, chunk 2 not at all',
    );
  } finally {
    await watching.close();
  }
  t.deepEqual(await inboxOf(gp), [], 'saved and acknowledged');
  t.true((await readFile(join(folder, `${messageId}_scan.bin`))).equals(payload), 'byte-exact, its checksum verified');
  t.deepEqual((await readdir(folder)).sort(), [`${messageId}.json`, `${messageId}_scan.bin`].sort(), 'no partial file, note or lock left');
});

test('a one-chunk download killed before its file was moved into place: the next run saves it and leaves nothing hidden', async (t) => {
  const { lab, gp } = await pair();
  const folder = await mkdtemp(join(work, 'one-chunk-'));
  const payload = randomBytes(300_000);
  const messageId = await sendScan(lab, gp, payload, 1_000_000);
  const target = join(folder, 'scan.bin');
  const args = ['--profile', gp.profile, '--url', server.origin, 'download', messageId, '-o', target];
  for (let run = 0; run < 2; run++) {
    const killed = await runCli(args, { MESHBOX_TEST_KILL_AT: JSON.stringify({ op: 'link', match: '\\.part -> ' }) });
    t.is(killed.signal, 'SIGKILL', killed.stderr);
  }
  t.true((await readdir(folder)).some((name) => name.endsWith('.part')), 'the killed runs left their downloaded file');
  const again = await runCli(args);
  t.is(again.code, 0, again.stderr);
  t.true((await readFile(target)).equals(payload));
  t.deepEqual(await readdir(folder), ['scan.bin'], 'what the killed runs left is gone');
});

// The payload is in place before its .json (a program watching the folder takes a message by its
// .json): a kill in between leaves a payload no .json names, which the next run must know for its
// own, by the claim the killed run wrote; also after a run in between that failed in an ordinary
// way once it had begun the download again.
for (const failedBetween of [false, true]) {
  const title = failedBetween
    ? 'receive killed after the payload was put in place, then a run that fails for want of room: the next run with room still knows the payload for its own, saves the message and acknowledges it'
    : 'receive killed after the payload was put in place, before its .json was written: the next run knows the payload for its own, saves the message and acknowledges it';
  test(title, async (t) => {
    const { lab, gp } = await pair();
    const folder = await mkdtemp(join(work, 'placed-'));
    const payload = randomBytes(3_000);
    const messageId = await sendScan(lab, gp, payload, 1_000_000);
    const args = ['--profile', gp.profile, 'receive', folder];
    const killed = await runCli(args, { MESHBOX_TEST_KILL_AT: JSON.stringify({ op: 'open', match: `${basename(folder)}/\\.${messageId}\\.json\\.[0-9a-f]{8}\\.part` }) });
    t.is(killed.signal, 'SIGKILL', killed.stderr);
    t.deepEqual((await readdir(folder)).filter((name) => !name.startsWith('.')), [`${messageId}_scan.bin`], 'the payload in place, no .json');
    if (failedBetween) {
      const { bavail, bsize } = await statfs(folder);
      const full = await runCli([...args, '--min-free', String(bavail * bsize + 2 ** 40)]);
      t.is(full.code, 1, full.stderr);
      t.regex(full.stderr, new RegExp(`would leave less than .* free .*message ${messageId} stays in the inbox`));
    }
    const again = await runCli(args);
    t.is(again.code, 0, again.stderr);
    t.true((await readFile(join(folder, `${messageId}_scan.bin`))).equals(payload));
    t.like(JSON.parse(await readFile(join(folder, `${messageId}.json`), 'utf8')), { messageId, payloadFile: `${messageId}_scan.bin` });
    t.deepEqual((await readdir(folder)).filter((name) => name !== '.meshbox-receive.lock').sort(), [`${messageId}.json`, `${messageId}_scan.bin`].sort(), 'nothing hidden left');
    t.deepEqual(await inboxOf(gp), []);
  });
}

// A one-chunk send whose answer is lost: the server has the message; the operator must not be
// told only that the server "cannot be reached", or they may send it again by hand.
test('a one-chunk send whose answer is lost, at a server that does not hold sends to their token, is reported as possibly delivered, not to be sent by hand', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'result.hl7', Buffer.from('result'));
  const proxy = await proxyFor(lab, withoutIdempotentSends(firstOnly(isSend(lab), 'answerLost')));
  let run;
  try {
    const running = startCli(['--profile', lab.profile, '--url', proxy.origin, '--timeout', '3', 'dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW]);
    // The server has answered (the proxy keeps the answer): the message is there.
    await bounded(proxy.stalled((event) => event.action === 'answerLost'), 'the answer to be lost');
    run = await bounded(running.exited, 'the client to give up');
  } finally {
    await proxy.close();
  }
  t.is((await inboxOf(gp)).length, 1, 'the server has the message');
  t.regex(run.stderr, /may have been delivered all the same: it stays, and the next pass looks for it by its local id before sending it again; do not send it by hand/);
});

test('a one-chunk send whose answer is lost at meshbox is asked again with its token and told its message: sent once, nothing left in doubt', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'result.hl7', Buffer.from('result'));
  const proxy = await proxyFor(lab, firstOnly(isSend(lab), 'answerLost'));
  let run;
  try {
    run = await bounded(runCli(['--profile', lab.profile, '--url', proxy.origin, '--timeout', '3', 'dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--json']), 'the dispatch to end');
  } finally {
    await proxy.close();
  }
  t.is(run.code, 0, run.stderr);
  const receipt = JSON.parse(run.stdout) as { messageId: string };
  // A repeat that came while the server still stored the first try was told to wait (503); on a
  // loaded machine a repeat's own answer can outlast --timeout, and the next repeat is told the same message.
  const sends = proxy.events.filter((event) => isSend(lab)(event.method, event.url)).map(({ action, status }) => [action, status]);
  t.deepEqual(sends[0], ['answerLost', 202]);
  t.deepEqual(sends.at(-1), ['pass', 202]);
  t.true(sends.slice(1, -1).every(([, status]) => status === 503 || status === 202), JSON.stringify(sends));
  t.deepEqual(await inboxOf(gp), [receipt.messageId], 'the file went once');
  t.true((await readdir(join(outbox, 'sent'))).includes(`${receipt.messageId}_result.hl7`));
});

const isChunk = (n: number) => (method: string, url: string) => method === 'POST' && new RegExp(`/outbox/[^/]+/${n}$`).test(url);

/**
 * `send` of a file of 3 chunks through a proxy that loses the answers to the requests `lose`
 * picks; `onLost` runs (with the file's path) once the first is lost.
 */
async function sendLosingAnswers(lose: (method: string, url: string) => boolean, onLost: (path: string) => void = () => {}) {
  const { lab, gp } = await pair();
  const path = join(await mkdtemp(join(work, 'send-')), 'result.bin');
  await writeFile(path, randomBytes(3000));
  const aMinuteAgo = new Date(Date.now() - 60_000);
  await utimes(path, aMinuteAgo, aMinuteAgo);
  const proxy = await proxyFor(lab, (method, url) => (lose(method, url) ? 'answerLost' : 'pass'));
  try {
    // A timeout a loaded machine's answers to the chunks before stay well within (each lost answer
    // waits it out): a loaded CI run was seen to leave chunk 1 unanswered for 10 s.
    const args = ['--profile', lab.profile, '--url', proxy.origin, '--timeout', '15', 'send', path, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--chunk-size', '1000', '--retries', '1'];
    const running = runCli(args);
    void proxy.stalled((event) => event.action === 'answerLost').then(() => onLost(path));
    const run = await bounded(running, 'the send to end');
    return { run, gp, lastChunk: proxy.events.filter((event) => /\/3$/.test(event.url)).map(({ action }) => action) };
  } finally {
    await proxy.close();
  }
}

test('a send whose last chunk is stored but every answer to it lost is complete, and reported sent (tracking tells): not left for the operator to send again', async (t) => {
  const { run, gp, lastChunk } = await sendLosingAnswers(isChunk(3));
  t.true(lastChunk.length > 0 && lastChunk.every((action) => action === 'answerLost'), JSON.stringify(lastChunk));
  t.is(run.code, 0, run.stderr);
  t.deepEqual(await inboxOf(gp), [run.stdout.trim()], 'the message, complete, is delivered once');
});

test('a send whose last chunk may be stored, when tracking cannot tell either, says the message may be complete already and not to send the file again', async (t) => {
  const { run, gp } = await sendLosingAnswers((method, url) => isChunk(3)(method, url) || url.includes('/tracking'));
  t.is(run.code, 1);
  t.regex(run.stderr, /\nmessage (\S+) may be complete already \(only that answer lost\), or is incomplete: do not send the file again; the server keeps its chunks for a while: finish it \(or learn that it is complete\) with\n  meshbox .* --resume \1\n$/);
  t.is((await inboxOf(gp)).length, 1, 'it is complete');
});

test('a send whose chunk 2 of 3 lost every answer is incomplete, and says so (tracking tells): resumed, not "may be complete"', async (t) => {
  const { run, gp } = await sendLosingAnswers(isChunk(2));
  t.is(run.code, 1);
  t.regex(run.stderr, /\nmessage (\S+) is incomplete; the server keeps its chunks for a while: finish it with\n  meshbox .* --resume \1\n$/);
  t.deepEqual(await inboxOf(gp), []);
});

test('a last chunk whose first answer was lost, and whose retry is cut off as the file changed meanwhile, completed the message: sent, with the warning that it holds the file as it was', async (t) => {
  let rewritten = false;
  const { run, gp } = await sendLosingAnswers(
    (method, url) => !rewritten && isChunk(3)(method, url),
    (path) => {
      rewritten = true;
      writeFileSync(path, Buffer.alloc(3000, 'B'), { flag: 'r+' });
    },
  );
  t.true(rewritten);
  t.is(run.code, 0, run.stderr);
  t.deepEqual(await inboxOf(gp), [run.stdout.trim()]);
  t.regex(run.stderr, /changed while it was being sent: message \S+ holds it as it was when the send began \(3000 bytes\)/);
});

test('kill -9 while chunk 3 of 4 is answered; the restarted dispatcher resumes and the recipient gets one whole message', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const payload = randomBytes(350_000);
  await put(outbox, 'images.bin', payload);
  const args = ['--profile', lab.profile, 'dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--chunk-size', '100000'];
  await killWhenAnswerLost(lab, args, (method, url) => method === 'POST' && url.endsWith('/3'));
  const again = await runCli([...args, '--json']);
  t.is(again.code, 0, again.stderr);
  t.like(JSON.parse(again.stdout), { file: 'images.bin', recovered: true, chunks: 4 });
  const inbox = await inboxOf(gp);
  t.is(inbox.length, 1);
  const received = await mkdtemp(join(work, 'check-'));
  t.is((await runCli(['--profile', gp.profile, 'receive', received])).code, 0);
  t.true((await readFile(join(received, `${inbox[0]}_images.bin`))).equals(payload));
});

test('kill -9 after the last chunk was stored but before its answer; the next run only moves the file into sent/', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'images.bin', randomBytes(250_000));
  const args = ['--profile', lab.profile, 'dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--chunk-size', '100000'];
  await killWhenAnswerLost(lab, args, (method, url) => method === 'POST' && url.endsWith('/3'));
  const again = await runCli([...args, '--json']);
  t.is(again.code, 0, again.stderr);
  t.like(JSON.parse(again.stdout), { recovered: true });
  t.is((await inboxOf(gp)).length, 1);
});

test('kill -9 in the finish after the file moved into sent/ (its id journalled): the next run removes the control file', async (t) => {
  const { lab, gp } = await pair();
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'result.hl7', Buffer.from('x'), { subject: 'S' });
  const args = ['--profile', lab.profile, 'dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW];
  const killed = await runCli(args, { MESHBOX_TEST_KILL_AT: JSON.stringify({ op: 'rm', match: 'result\\.hl7\\.ctl\\.json' }) });
  t.is(killed.signal, 'SIGKILL');
  t.is((await runCli(args)).code, 0);
  t.deepEqual((await readdir(outbox)).sort(), ['.meshbox-dispatch', 'failed', 'sent']);
  t.is((await inboxOf(gp)).length, 1);
});

test('receive killed while its acknowledgement is answered (ack done) or before the ack reached the server: nothing lost, saved once more at most', async (t) => {
  const { lab, gp } = await pair();
  const sender = new MeshClient(lab.settings);
  try {
    await sender.sendMessage({ to: gp.mailbox.id, workflowId: WORKFLOW, fileName: 'a.txt', body: Buffer.from('aaa'), size: 3 });
  } finally {
    sender.close();
  }
  for (const action of ['hold', 'answerLost'] as const) {
    const folder = await mkdtemp(join(work, 'incoming-'));
    if (action === 'answerLost') {
      const again = new MeshClient(lab.settings);
      await again.sendMessage({ to: gp.mailbox.id, workflowId: WORKFLOW, fileName: 'b.txt', body: Buffer.from('bbb'), size: 3 }).finally(() => again.close());
    }
    const proxy = await proxyFor(gp, firstOnly((method, url) => method === 'PUT' && url.endsWith('/status/acknowledged'), action));
    try {
      const receiving = startCli(['--profile', gp.profile, '--url', proxy.origin, 'receive', folder, '--watch']);
      await bounded(proxy.stalled(() => true), 'the acknowledgement to stall');
      await kill9(receiving);
    } finally {
      await proxy.close();
    }
    const saved = (await readdir(folder)).filter((name) => !name.startsWith('.'));
    t.is(saved.length, 2, `${action}: payload and .json on disk before the ack`);
    const again = await runCli(['--profile', gp.profile, 'receive', folder]);
    t.is(again.code, 0, again.stderr);
  }
  t.deepEqual(await inboxOf(gp), []);
});

// A kill in the finish after the file moved into sent/, before its control file was deleted: the
// lab system then puts in the next result's control file (first, as it must), on a share whose
// clock runs a minute behind this machine's (or copied with its time kept, cp -p): its time is
// older than the note of the move. The next run must leave it for the next file.
test('kill -9 in the finish before the control file is deleted; the next result\'s control file, stamped by a share whose clock runs behind, is not deleted by the next run: the next result goes where it says', async (t) => {
  const { lab, gp } = await pair();
  const other = (await pair()).gp;
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'result.hl7', Buffer.from('first result, for the default GP'), { workflowId: WORKFLOW });
  const args = ['--profile', lab.profile, 'dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW];
  const killed = await runCli(args, { MESHBOX_TEST_KILL_AT: JSON.stringify({ op: 'rm', match: 'result\\.hl7\\.ctl\\.json' }) });
  t.is(killed.signal, 'SIGKILL', killed.stderr);
  t.deepEqual((await readdir(join(outbox, 'sent'))).length, 2, 'the first result went, and is in sent/');
  // The next result, for the other practice: its control file first, then the file (times a minute behind).
  await put(outbox, 'result.hl7', Buffer.from('second result, for the other practice'), { to: other.mailbox.id });
  const next = await runCli(args);
  t.is(next.code, 0, next.stderr);
  t.is((await inboxOf(other)).length, 1, 'the second result went where its control file says');
  t.is((await inboxOf(gp)).length, 1, 'the default GP got the first result only');
});
