import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { mkdtemp, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test, { type ExecutionContext } from 'ava';
import { waitFor } from '../../scripts/services/processes.ts';
import { DEFAULT_MAILBOX_CACHE_MS } from '../../server/src/config.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import { MailboxStore } from '../../server/src/store/mailboxes.ts';
import { PasswordCipher } from '../../server/src/store/password-cipher.ts';
import { fileTemporaryDirectory } from '../../test/support/temporary-directory.ts';
import { startTestServer, TEST_SECRET_KEY, type TestServer } from '../../test/support/harness.ts';
import { issueServerCertificate } from '../../shared/src/pki/index.ts';
import { MeshClient } from '../src/client/mesh-client.ts';
import { mailboxPair, type MailboxFiles, runInProcess, savedIn } from './support/cli-fixture.ts';
import { withFakeServer } from './support/fake-server.ts';

const WORKFLOW = 'PATH_TEST_RESULTS';
let server: TestServer;
const work = fileTemporaryDirectory(test, 'watch-ops');

test.before(async () => {
  server = await startTestServer();
});
test.after.always(async () => {
  await server?.close();
});

/** A file put into the outbox a minute ago (older than the settling time). */
async function put(outbox: string, name: string, payload: string): Promise<void> {
  const aMinuteAgo = new Date(Date.now() - 60_000);
  await writeFile(join(outbox, name), payload);
  await utimes(join(outbox, name), aMinuteAgo, aMinuteAgo);
}

/**
 * A `dispatch --watch` of `outbox` (every second), whose password an administrator then changes
 * (meshbox admin mailbox password) with the profile not yet updated: once this resolves, the old
 * password is refused everywhere (the servers' mailbox cache has let it go).
 */
async function dispatchingThenPasswordChanged(t: ExecutionContext, files: MailboxFiles, to: string, outbox: string) {
  const stop = new AbortController();
  let stderr = '';
  const watching = runInProcess(['--profile', files.profile, 'dispatch', outbox, '--to', to, '--workflow', WORKFLOW, '--watch', '--interval', '1'], {
    cwd: work,
    stopSignal: stop.signal,
    onStderr: (text) => (stderr += text),
  });
  // The watch has validated its mailbox (its start's handshake) with the password it read.
  t.true(await waitFor(async () => (await server.services.mailboxes.listing(files.mailbox.id))?.lastHandshake != null, 30_000, 50), 'watching');
  await new MailboxStore(server.redis, redisKeys(server.redisPrefix), new PasswordCipher(TEST_SECRET_KEY)).setPassword(files.mailbox.id, 'rotated-password');
  await sleep(DEFAULT_MAILBOX_CACHE_MS + 200);
  return { stop, watching, stderr: () => stderr };
}

test('dispatch --watch whose credentials are refused (the password changed by an administrator) fails the pass as a whole at the second file refused: two lines a pass, not one per file', async (t) => {
  const { lab, gp } = await mailboxPair(server, join(work, 'profiles'));
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const { stop, watching, stderr } = await dispatchingThenPasswordChanged(t, lab, gp.mailbox.id, outbox);
  const files = 20;
  for (let i = 0; i < files; i += 1) await put(outbox, `result-${String(i).padStart(2, '0')}.hl7`, `MSH|${i}`);
  // A few passes.
  await waitFor(async () => (stderr().match(/HTTP 403/g) ?? []).length >= 2 * files || /looked at again/.test(stderr()), 30_000, 50);
  await sleep(2500);
  stop.abort();
  const run = await watching;
  t.is(run.code, 0, run.stderr);
  t.deepEqual((await readdir(outbox)).filter((name) => name.endsWith('.hl7')).length, files, 'nothing sent');
  const lines = run.stderr.split('\n').filter((line) => line !== '');
  t.log(lines.length, lines.slice(0, 3).join('\n'));
  const refusals = lines.filter((line) => /403/.test(line));
  t.true(refusals.length > 0);
  // As receive does (its listing is refused): the pass fails as a whole, at the second file refused (the first may be refused for itself), in at most three passes.
  t.true(refusals.length <= 6, `${refusals.length} lines for 3 s of refused credentials, ${files} files in the outbox`);
});

test('dispatch --watch against a server answering 503 for every send (down for maintenance) fails the pass as a whole at the second file refused: two lines a pass, not one per file', async (t) => {
  const { lab } = await mailboxPair(server, join(work, 'profiles'));
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const files = 20;
  for (let i = 0; i < files; i += 1) await put(outbox, `result-${String(i).padStart(2, '0')}.hl7`, `MSH|${i}`);
  let sends = 0;
  const stop = new AbortController();
  const run = await withFakeServer(
    server.ca,
    (request, _body, response) => {
      // The handshake is answered; every send is refused for now.
      if (request.url?.endsWith('/outbox')) {
        sends += 1;
        response.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' }).end(JSON.stringify({ errorDescription: 'down for maintenance' }));
      } else if (request.method === 'POST') response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      // Tracking by local id: nothing carries it.
      else response.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errorDescription: 'not found' }));
    },
    async (origin) => {
      const watching = runInProcess(['--profile', lab.profile, '--url', origin, 'dispatch', outbox, '--to', 'X26OT001', '--workflow', WORKFLOW, '--watch', '--interval', '1', '--retries', '0'], {
        cwd: work,
        stopSignal: stop.signal,
      });
      await sleep(3500);
      stop.abort();
      return watching;
    },
  );
  t.is(run.code, 0, run.stderr);
  const lines = run.stderr.split('\n').filter((line) => line !== '');
  t.log(`${sends} sends, ${lines.length} lines`, lines.slice(0, 2).join('\n'));
  t.true(lines.length > 0);
  // The first send's 503 says the server is not taking any: the pass ends there, said once (as a refused connection ends it).
  t.true(lines.length <= 6, `${lines.length} lines (${sends} sends) for 3.5 s of a server in maintenance, ${files} files in the outbox`);
});

test('receive --watch removes the chunks it kept of a message cut short by the server going away, once the message is gone, as a new run does', async (t) => {
  const { gp } = await mailboxPair(server, join(work, 'profiles'));
  const into = await mkdtemp(join(work, 'in-'));
  const MESSAGE_ID = '20260101000000000000_ABC123';
  const chunks = [gzipSync(randomBytes(50_000)), gzipSync(randomBytes(40_000))];
  let listings = 0;
  let gone = false;
  const certificate = issueServerCertificate({ ca: server.ca, commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const fake = createHttpsServer({ cert: certificate.certPem, key: certificate.keyPem }, (request, response) => {
    request.resume();
    const path = new URL(request.url ?? '', 'https://x').pathname.replace(/^\/messageexchange\/[^/]+/, '');
    if (request.method === 'POST') return void response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    if (path === '/inbox') {
      listings += 1;
      // Listed on the second pass only; acknowledged elsewhere (or expired) while the server was away.
      return void response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ messages: listings === 2 ? [MESSAGE_ID] : [] }));
    }
    if (gone) return void response.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errorCode: '20', errorDescription: 'Message does not exist' }));
    const number = path.endsWith('/2') ? 2 : 1;
    response.writeHead(number === 1 ? 206 : 200, {
      'content-type': 'application/octet-stream',
      'content-encoding': 'gzip',
      'content-length': String(chunks[number - 1]!.length),
      'mex-messageid': MESSAGE_ID,
      'mex-messagetype': 'DATA',
      'mex-filename': 'scan.bin',
      'mex-chunk-range': `${number}:2`,
      'mex-total-chunks': '2',
      ...(request.method === 'GET' ? { connection: 'close' } : {}),
    });
    if (request.method === 'HEAD') return void response.end();
    response.end(chunks[number - 1]);
    // Chunk 1 served: the server goes away (a restart) before chunk 2 is asked for.
    if (number === 1) {
      fake.close();
      setTimeout(() => {
        gone = true;
        fake.listen(port, '127.0.0.1');
      }, 1500);
    }
  });
  fake.listen(0, '127.0.0.1');
  await once(fake, 'listening');
  const port = (fake.address() as AddressInfo).port;
  t.teardown(() => fake.close());
  const stop = new AbortController();
  let stderr = '';
  const watching = runInProcess(['--profile', gp.profile, '--url', `https://127.0.0.1:${port}`, 'receive', into, '--watch', '--interval', '1', '--retries', '0'], {
    cwd: work,
    stopSignal: stop.signal,
    onStderr: (text) => (stderr += text),
  });
  // The server back, the message gone, and a few passes after.
  t.true(await waitFor(async () => listings >= 6, 30_000, 50));
  stop.abort();
  const run = await watching;
  t.is(run.code, 0, run.stderr);
  t.regex(stderr, /looked at again/, 'the pass the server went away in failed');
  t.deepEqual(await savedIn(into), [], 'no chunks kept of a message gone for good');
});

test('receive --watch against a server answering 503 for every download (its object storage down) fails the pass as a whole at the second message refused: two lines a pass, not one per message', async (t) => {
  const { gp } = await mailboxPair(server, join(work, 'profiles'));
  const into = await mkdtemp(join(work, 'in-'));
  const ids = Array.from({ length: 20 }, (_, i) => `20260101000000000${String(i).padStart(3, '0')}_ABC123`);
  let downloads = 0;
  const stop = new AbortController();
  const run = await withFakeServer(
    server.ca,
    (request, _body, response) => {
      const path = new URL(request.url ?? '', 'https://x').pathname.replace(/^\/messageexchange\/[^/]+/, '');
      if (request.method === 'POST') return void response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      if (path === '/inbox') return void response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ messages: ids }));
      if (request.method === 'HEAD') {
        return void response.writeHead(200, { 'mex-messageid': path.split('/')[2]!, 'mex-messagetype': 'DATA', 'mex-filename': 'r.hl7', 'mex-total-chunks': '1' }).end();
      }
      downloads += 1;
      response.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' }).end(JSON.stringify({ errorDescription: 'storage unavailable' }));
    },
    async (origin) => {
      const watching = runInProcess(['--profile', gp.profile, '--url', origin, 'receive', into, '--watch', '--interval', '1', '--retries', '0'], { cwd: work, stopSignal: stop.signal });
      await sleep(3500);
      stop.abort();
      return watching;
    },
  );
  t.is(run.code, 0, run.stderr);
  const lines = run.stderr.split('\n').filter((line) => line !== '');
  t.log(`${downloads} downloads, ${lines.length} lines`, lines.slice(0, 2).join('\n'));
  t.true(lines.length > 0);
  t.true(lines.length <= 6, `${lines.length} lines (${downloads} downloads) for 3.5 s of a server unable to serve any, ${ids.length} messages waiting`);
});

test('a watch takes up connection settings renewed on disk after a pass they fail (the password an administrator changed, then written into the profile), without a restart', async (t) => {
  const { lab, gp } = await mailboxPair(server, join(work, 'profiles'));
  const into = await mkdtemp(join(work, 'in-'));
  const stop = new AbortController();
  let stderr = '';
  const watching = runInProcess(['--profile', gp.profile, 'receive', into, '--watch', '--interval', '1'], {
    cwd: work,
    stopSignal: stop.signal,
    onStderr: (text) => (stderr += text),
  });
  try {
    t.true(await waitFor(async () => (await server.services.mailboxes.listing(gp.mailbox.id))?.lastHandshake != null, 30_000, 50), 'watching');
    await new MailboxStore(server.redis, redisKeys(server.redisPrefix), new PasswordCipher(TEST_SECRET_KEY)).setPassword(gp.mailbox.id, 'renewed-password');
    t.true(await waitFor(async () => /HTTP 403.*looked at again/.test(stderr), 30_000, 50), 'the old password refused');
    const profile = JSON.parse(await readFile(gp.profile, 'utf8')) as Record<string, unknown>;
    await writeFile(gp.profile, JSON.stringify({ ...profile, password: 'renewed-password' }));
    const sender = new MeshClient(lab.settings);
    const messageId = await sender.sendMessage({ to: gp.mailbox.id, workflowId: WORKFLOW, body: Buffer.from('MSH|after renewal'), fileName: 'r.hl7' }).finally(() => sender.close());
    t.true(await waitFor(async () => (await savedIn(into)).includes(`${messageId}_r.hl7`), 30_000, 50), `received with the renewed password: ${stderr}`);
  } finally {
    stop.abort();
  }
  const run = await watching;
  t.is(run.code, 0, run.stderr);
  t.regex(run.stderr, /meshbox: the connection settings changed on disk \(a renewed certificate, key or CA, a new password\): taken up\n/);
});

test("a 503 for one file's recipient (its record unreadable: api.md) does not hold back the outbox's other files: one refusal alone may be the file's own", async (t) => {
  const { lab, gp } = await mailboxPair(server, join(work, 'profiles'));
  const unreadable = await server.createMailbox({ name: 'Unreadable' });
  // Stored under another secret key: the server answers a send to it 503, "mailbox ... cannot be read".
  await new MailboxStore(server.redis, redisKeys(server.redisPrefix), new PasswordCipher('not the server key')).setPassword(unreadable.id, unreadable.password);
  const outbox = await mkdtemp(join(work, 'outbox-'));
  await put(outbox, 'a-to-unreadable.hl7', 'MSH|a');
  const aMinuteAgo = new Date(Date.now() - 60_000);
  await writeFile(join(outbox, 'a-to-unreadable.hl7.ctl.json'), JSON.stringify({ to: unreadable.id }));
  await utimes(join(outbox, 'a-to-unreadable.hl7.ctl.json'), aMinuteAgo, aMinuteAgo);
  await put(outbox, 'b-to-gp.hl7', 'MSH|b');
  const stop = new AbortController();
  const watching = runInProcess(['--profile', lab.profile, 'dispatch', outbox, '--to', gp.mailbox.id, '--workflow', WORKFLOW, '--watch', '--interval', '1', '--retries', '0'], {
    cwd: work,
    stopSignal: stop.signal,
  });
  try {
    t.true(await waitFor(async () => !(await readdir(outbox)).includes('b-to-gp.hl7'), 30_000, 50), 'b-to-gp.hl7 sent');
  } finally {
    stop.abort();
  }
  const run = await watching;
  t.regex(run.stderr, /cannot be read \(HTTP 503.*\(a-to-unreadable\.hl7 stays in the folder\)/);
  t.true((await readdir(outbox)).includes('a-to-unreadable.hl7'));
});

test('dispatch --watch takes up a password renewed on disk with one file in the outbox: one file refused 403 fails no pass, but has the settings read again', async (t) => {
  const { lab, gp } = await mailboxPair(server, join(work, 'profiles'));
  const outbox = await mkdtemp(join(work, 'outbox-'));
  const { stop, watching, stderr } = await dispatchingThenPasswordChanged(t, lab, gp.mailbox.id, outbox);
  try {
    await put(outbox, 'a.hl7', 'MSH|a');
    t.true(await waitFor(async () => /HTTP 403/.test(stderr()), 30_000, 50), 'the old password refused');
    const profile = JSON.parse(await readFile(lab.profile, 'utf8')) as Record<string, unknown>;
    await writeFile(lab.profile, JSON.stringify({ ...profile, password: 'rotated-password' }));
    t.true(await waitFor(async () => !(await readdir(outbox)).includes('a.hl7'), 30_000, 50), `a.hl7 sent with the renewed password: ${stderr()}`);
  } finally {
    stop.abort();
  }
  const run = await watching;
  t.is(run.code, 0, run.stderr);
  t.regex(run.stderr, /taken up\n/);
});
