import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import { type AddressInfo, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { issueServerCertificate } from '../../shared/src/pki/index.ts';
import { startTestServer, type TestMailbox, type TestServer } from '../../test/support/harness.ts';
import { connectionSettings } from './support/cli-fixture.ts';
import { type FakeHandler, withFakeServer } from './support/fake-server.ts';
import { AcceptedWithoutIdError, AnswerCutOffError, MeshClientError, MeshConnectionError } from '../src/client/errors.ts';
import { type ConnectionSettings, MeshClient } from '../src/client/mesh-client.ts';
import { HttpsTransport } from '../src/client/transport.ts';
import { downloadFile } from '../src/transfer/download.ts';
import { noProgress } from '../src/transfer/progress.ts';
import { ChunkUploadError, mayHaveBeenSent } from '../src/transfer/upload.ts';

let server: TestServer;
let work: string;

test.before(async () => {
  server = await startTestServer();
  work = await mkdtemp(join(tmpdir(), 'meshbox-client-test-'));
});

test.after.always(async () => {
  await server?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

function settingsFor(mailbox: TestMailbox, origin = server.origin): ConnectionSettings {
  return connectionSettings(server, mailbox, origin);
}

/** Runs `use` with a client for the mailbox, closing it after. */
async function withClient<T>(mailbox: TestMailbox, use: (client: MeshClient) => Promise<T>): Promise<T> {
  const client = new MeshClient(settingsFor(mailbox), { retryDelayMs: 10 });
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

test('listInbox follows links.next across pages: 12 messages with max_results 10', async (t) => {
  const sender = await server.createMailbox();
  const recipient = await server.createMailbox();
  const sent: string[] = [];
  await withClient(sender, async (client) => {
    for (let i = 0; i < 12; i += 1) {
      sent.push(await client.sendMessage({ to: recipient.id, workflowId: 'WF', body: Buffer.from(`message ${i}`) }));
    }
  });
  await withClient(recipient, async (client) => {
    t.deepEqual(await client.listInbox({ maxResults: 10 }), sent, 'every id, oldest first');
    t.is(await client.count(), 12);
    const firstPage: string[] = [];
    for await (const id of client.inbox({ maxResults: 10 })) {
      firstPage.push(id);
      if (firstPage.length === 10) break;
    }
    t.deepEqual(firstPage, sent.slice(0, 10));
  });
});

test('a three-chunk message uploaded chunk by chunk downloads whole, in order', async (t) => {
  const sender = await server.createMailbox();
  const recipient = await server.createMailbox();
  const chunks = [randomBytes(70_000), randomBytes(50_000), randomBytes(10_000)] as const;
  const chunkFile = join(work, 'chunk3.bin');
  await writeFile(chunkFile, chunks[2]);

  const messageId = await withClient(sender, async (client) => {
    const id = await client.sendMessage({
      to: recipient.id,
      workflowId: 'WF',
      body: chunks[0],
      totalChunks: 3,
      fileName: 'whole.bin',
      subject: 'three parts',
    });
    await client.uploadChunk(id, 2, 3, chunks[1]);
    await client.uploadChunk(id, 3, 3, () => createReadStream(chunkFile), { size: chunks[2].length });
    return id;
  });

  await withClient(recipient, async (client) => {
    const head = await client.head(messageId);
    t.is(head.messageId, messageId);
    t.is(head.totalChunks, 3);
    t.is(head.fileName, 'whole.bin');
    t.is(head.subject, 'three parts');
    t.is(head.from, sender.id);

    const second = await client.downloadRawChunk(messageId, 2);
    t.is(second.status, 206);
    t.is(second.metadata.chunkNumber, 2);
    second.body.resume();

    const downloaded = await downloadFile(client, { messageId, output: 'whole.bin', cwd: work, progress: noProgress, overwrite: false });
    t.is(downloaded.totalChunks, 3);
    t.true((await readFile(join(work, 'whole.bin'))).equals(Buffer.concat(chunks)));

    await client.acknowledge(messageId);
    t.is((await client.head(messageId)).messageId, messageId, 'described still while its payload is kept');
    const error = await t.throwsAsync(client.head(`${messageId.slice(0, -1)}X`), { instanceOf: MeshClientError });
    t.is(error?.status, 404);
  });

  const tracking = await withClient(sender, (client) => client.track(messageId));
  t.is(tracking.status, 'acknowledged');
  t.is(tracking.chunk_count, 3);
});

test('errors carry the HTTP status, MESH code and description from the v2 body', async (t) => {
  const sender = await server.createMailbox();
  await withClient(sender, async (client) => {
    const error = await t.throwsAsync(client.sendMessage({ to: 'NOBODY', workflowId: 'WF', body: Buffer.from('x') }), {
      instanceOf: MeshClientError,
    });
    t.is(error?.status, 417);
    t.is(error?.code, '12');
    t.is(error?.event, 'SEND');
    t.regex(error?.description ?? '', /Unregistered to address/);
    t.truthy(error?.internalId);

    const missing = await t.throwsAsync(client.track('20200101000000000000_ABCDEF'), { instanceOf: MeshClientError });
    t.is(missing?.status, 404);
    t.is(missing?.code, '20');
  });
});

test('a wrong password is refused with 403', async (t) => {
  const mailbox = await server.createMailbox();
  const client = new MeshClient({ ...settingsFor(mailbox), password: 'wrong' });
  try {
    const error = await t.throwsAsync(client.handshake(), { instanceOf: MeshClientError });
    t.is(error?.status, 403);
  } finally {
    client.close();
  }
});

test('a 503 is retried with a fresh token, and a GET succeeds on the next attempt', async (t) => {
  const certificate = issueServerCertificate({ ca: server.ca, commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const authorizations: string[] = [];
  const flaky = createServer({ cert: certificate.certPem, key: certificate.keyPem }, (request, response) => {
    authorizations.push(request.headers.authorization ?? '');
    if (authorizations.length === 1) {
      response.writeHead(503, { 'content-type': 'text/plain' }).end('busy');
      return;
    }
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count: 7 }));
  });
  flaky.listen(0, '127.0.0.1');
  await once(flaky, 'listening');
  const origin = `https://127.0.0.1:${(flaky.address() as AddressInfo).port}`;
  const mailbox = await server.createMailbox();
  const client = new MeshClient(settingsFor(mailbox, origin), { retryDelayMs: 10 });
  try {
    t.is(await client.count(), 7);
    t.is(authorizations.length, 2);
    t.not(authorizations[0], authorizations[1]);
    t.regex(authorizations[1] ?? '', new RegExp(`^NHSMESH ${mailbox.id}:`));
  } finally {
    client.close();
    flaky.closeAllConnections();
    flaky.close();
  }
});

test('a server that keeps answering 503 gives up after the retries with the 503', async (t) => {
  const certificate = issueServerCertificate({ ca: server.ca, commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  let requests = 0;
  const busy = createServer({ cert: certificate.certPem, key: certificate.keyPem }, (_request, response) => {
    requests += 1;
    response.writeHead(503, { 'content-type': 'text/plain' }).end('try later');
  });
  busy.listen(0, '127.0.0.1');
  await once(busy, 'listening');
  const origin = `https://127.0.0.1:${(busy.address() as AddressInfo).port}`;
  const client = new MeshClient(settingsFor(await server.createMailbox(), origin), { retries: 2, retryDelayMs: 5 });
  try {
    const error = await t.throwsAsync(client.count(), { instanceOf: MeshClientError });
    t.is(error?.status, 503);
    t.is(error?.description, 'Service Unavailable: try later');
    t.is(requests, 3);
  } finally {
    client.close();
    busy.closeAllConnections();
    busy.close();
  }
});

test('a header Node refuses to write is thrown as it is, and the file opened for the body is closed', async (t) => {
  const sender = await server.createMailbox();
  const path = join(work, 'body.txt');
  await writeFile(path, 'result');
  let opened: ReturnType<typeof createReadStream> | undefined;
  const error = await withClient(sender, (client) =>
    t.throwsAsync(
      client.sendMessage({
        to: sender.id,
        workflowId: 'WF',
        fileName: 'two\nlines.txt',
        size: 6,
        body: () => (opened = createReadStream(path)),
      }),
    ),
  );
  t.is((error as NodeJS.ErrnoException | undefined)?.code, 'ERR_INVALID_CHAR');
  t.truthy(opened);
  t.true(opened!.destroyed);
});

test('a one-chunk send whose connection breaks after the server took it is not sent again, even on a kept-alive socket', async (t) => {
  const certificate = issueServerCertificate({ ca: server.ca, commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  let sends = 0;
  // Takes every message, then its answer is lost: the connection breaks.
  const lossy = createServer({ cert: certificate.certPem, key: certificate.keyPem }, (request, response) => {
    if (request.method !== 'POST') {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ count: 0 }));
      return;
    }
    sends += 1;
    request.resume();
    request.on('end', () => request.socket.destroy());
  });
  lossy.listen(0, '127.0.0.1');
  await once(lossy, 'listening');
  const origin = `https://127.0.0.1:${(lossy.address() as AddressInfo).port}`;
  const client = new MeshClient(settingsFor(await server.createMailbox(), origin), { retries: 3, retryDelayMs: 5 });
  try {
    // The send then goes out on the socket this request leaves open, as a second one would.
    t.is(await client.count(), 0);
    await t.throwsAsync(client.sendMessage({ to: 'GP001', workflowId: 'W', body: Buffer.from('result') }), { message: /socket hang up|ECONNRESET/ });
    t.is(sends, 1, 'the server may have taken it: sending it again could deliver it twice');
  } finally {
    client.close();
    lossy.closeAllConnections();
    lossy.close();
  }
});

/**
 * How a fake server answers: each send as `answer` picks, by how many came before it — lost
 * (the connection dropped), a 202 cut off part-way, or an answer — and each _ping saying that
 * it holds sends to their token (meshbox's), but those `pingFails` picks (by how many came
 * before), answered 503.
 */
interface SendScript {
  readonly answer: (sendsBefore: number) => 'lose' | 'cut' | { status: number; body: object | string; retryAfter?: string };
  readonly pingFails?: (pingsBefore: number) => boolean;
}

/** What the fake server saw of the sends: each one's Authorization and when it arrived whole. */
interface SeenSends {
  readonly tokens: string[];
  readonly arrivals: number[];
}

/** Runs `use` with a client (allowed `retries`) of a new mailbox against a fake server answering as `script` says. */
async function againstScriptedSends<T>(script: SendScript, retries: number, use: (client: MeshClient, seen: SeenSends) => Promise<T>): Promise<T> {
  const seen: SeenSends = { tokens: [], arrivals: [] };
  let pings = 0;
  const handle: FakeHandler = (request, _body, response) => {
    if (request.method !== 'POST') {
      const failing = script.pingFails?.(pings++) ?? false;
      response.writeHead(failing ? 503 : 200, { 'content-type': 'application/json' }).end(JSON.stringify(failing ? { errorDescription: 'restarting' } : { status: 'ok', idempotent_sends: true }));
      return;
    }
    const decided = script.answer(seen.tokens.length);
    seen.tokens.push(request.headers.authorization ?? '');
    seen.arrivals.push(Date.now());
    if (decided === 'lose') return request.socket.destroy();
    if (decided === 'cut') {
      const text = JSON.stringify({ message_id: 'CUTOFFANSWER' });
      response.writeHead(202, { 'content-type': 'application/json', 'content-length': String(text.length) });
      return response.write(text.slice(0, 5), () => response.socket?.destroy());
    }
    response.writeHead(decided.status, { 'content-type': 'application/json', ...(decided.retryAfter ? { 'retry-after': decided.retryAfter } : {}) });
    response.end(typeof decided.body === 'string' ? decided.body : JSON.stringify(decided.body));
  };
  const mailbox = await server.createMailbox();
  return withFakeServer(server.ca, handle, async (origin) => {
    const client = new MeshClient(settingsFor(mailbox, origin), { retries, retryDelayMs: 5 });
    try {
      return await use(client, seen);
    } finally {
      client.close();
    }
  });
}

test('a send whose answer is lost, to a server that holds sends to their token, is asked again with the same token and gets its message id', async (t) => {
  await againstScriptedSends({ answer: (before) => (before === 0 ? 'lose' : { status: 202, body: { message_id: 'FIRSTTRYSID' } }) }, 3, async (client, fake) => {
    t.is(await client.sendMessage({ to: 'GP001', workflowId: 'W', body: Buffer.from('result') }), 'FIRSTTRYSID');
    t.is(fake.tokens.length, 2);
    t.is(fake.tokens[1], fake.tokens[0], 'the repeat carries the first try\'s token');
    t.regex(fake.tokens[0]!, /^NHSMESH /);
  });
});

test('chunk 1 of several whose answer is lost is asked again with the same token too, where the server holds sends to their token: one message, not an orphan carrying the local id beside it', async (t) => {
  await againstScriptedSends({ answer: (before) => (before === 0 ? 'lose' : { status: 202, body: { message_id: 'FIRSTTRYSID' } }) }, 3, async (client, fake) => {
    t.is(await client.sendMessage({ to: 'GP001', workflowId: 'W', localId: 'L1', body: Buffer.from('chunk one'), totalChunks: 3 }), 'FIRSTTRYSID');
    t.is(fake.tokens.length, 2);
    t.is(fake.tokens[1], fake.tokens[0], "the repeat carries the first try's token");
  });
});

test('chunk 1 of several whose answer is lost, to a server that does not hold sends to their token (MESH), is asked again with a new token: what it left is never complete, so never delivered', async (t) => {
  await againstScriptedSends(
    { answer: (before) => (before === 0 ? 'lose' : { status: 202, body: { message_id: 'SECONDTRYID' } }), pingFails: () => true },
    3,
    async (client, fake) => {
      t.is(await client.sendMessage({ to: 'GP001', workflowId: 'W', body: Buffer.from('chunk one'), totalChunks: 3 }), 'SECONDTRYID');
      t.is(fake.tokens.length, 2);
      t.not(fake.tokens[1], fake.tokens[0]);
    },
  );
});

test('a same-token repeat still refused when the retries run out leaves the send in doubt: the lost answer is the error, not the refusal', async (t) => {
  const answer = (before: number) => (before === 0 ? ('lose' as const) : { status: 503, body: { errorDescription: 'still storing' }, retryAfter: '0' });
  await againstScriptedSends({ answer }, 2, async (client, fake) => {
    const error = await t.throwsAsync(client.sendMessage({ to: 'GP001', workflowId: 'W', body: Buffer.from('result') }));
    t.true(error instanceof MeshConnectionError && error.mayHaveArrived, String(error));
    t.is(fake.tokens.length, 3);
    t.is(new Set(fake.tokens).size, 1);
  });
});

test('a repeat whose 202 is cut off before the message id says the server took the send, not only that it may have, whatever the tries after it', async (t) => {
  await againstScriptedSends({ answer: (before) => (before === 1 ? 'cut' : 'lose') }, 2, async (client, fake) => {
    const error = await t.throwsAsync(client.sendMessage({ to: 'GP001', workflowId: 'W', body: Buffer.from('result') }));
    t.true(error instanceof AnswerCutOffError && error.status === 202, String(error));
    t.is(fake.tokens.length, 3);
  });
});

test('a _ping that fails (a server restarting) is asked again at the next lost answer, not remembered as "no"', async (t) => {
  const script: SendScript = {
    answer: (before) => (before === 0 || before === 1 ? 'lose' : { status: 202, body: { message_id: 'SECONDSEND' } }),
    pingFails: (pingsBefore) => pingsBefore < 2,
  };
  await againstScriptedSends(script, 1, async (client, fake) => {
    const first = await t.throwsAsync(client.sendMessage({ to: 'GP001', workflowId: 'W', body: Buffer.from('first') }));
    t.true(first instanceof MeshConnectionError && first.mayHaveArrived, 'not repeated: the server could not say');
    t.is(await client.sendMessage({ to: 'GP001', workflowId: 'W', body: Buffer.from('second') }), 'SECONDSEND');
    t.is(fake.tokens.length, 3, 'the first send once, the second twice');
    t.is(fake.tokens[2], fake.tokens[1]);
  });
});

test('a send a gateway answers 502 or 504 (it may have passed it on) is repeated with its token where sends are idempotent, and left in doubt elsewhere', async (t) => {
  for (const status of [502, 504]) {
    const gatewayFailure = { status, body: { errorDescription: 'upstream went away' } };
    await againstScriptedSends({ answer: (before) => (before === 0 ? gatewayFailure : { status: 202, body: { message_id: 'AFTERGATEWAY' } }) }, 2, async (client, idempotent) => {
      t.is(await client.sendMessage({ to: 'GP001', workflowId: 'W', body: Buffer.from('result') }), 'AFTERGATEWAY');
      t.deepEqual(new Set(idempotent.tokens).size, 1);
    });
    await againstScriptedSends({ answer: () => gatewayFailure, pingFails: () => true }, 2, async (client, plain) => {
      const error = await t.throwsAsync(client.sendMessage({ to: 'GP001', workflowId: 'W', body: Buffer.from('result') }));
      t.is(plain.tokens.length, 1, `${status}: not repeated where a repeat could deliver it twice`);
      t.true(mayHaveBeenSent(new ChunkUploadError(undefined, 1, 1, error)), `${status}: in doubt, not surely failed`);
    });
  }
});

test('a repeat answered 2xx whose message id cannot be read (a page, not JSON) says the server took the send', async (t) => {
  await againstScriptedSends({ answer: (before) => (before === 0 ? 'lose' : { status: 200, body: '<html>signed in</html>' }) }, 2, async (client) => {
    const error = await t.throwsAsync(client.sendMessage({ to: 'GP001', workflowId: 'W', body: Buffer.from('result') }));
    t.true(error instanceof AcceptedWithoutIdError, String(error));
    t.regex(error!.message, /^the server answered HTTP 200, but its body is not JSON: <html>signed in<\/html>/);
    t.true(mayHaveBeenSent(new ChunkUploadError(undefined, 1, 1, error)));
  });
});

test('a send answered 2xx with a body past what the client reads of one (a misbehaving server) says the server took the send, as for one not JSON', async (t) => {
  await againstScriptedSends({ answer: () => ({ status: 202, body: ' '.repeat(17 * 1024 * 1024) }) }, 1, async (client, fake) => {
    const error = await t.throwsAsync(client.sendMessage({ to: 'GP001', workflowId: 'W', body: Buffer.from('result') }));
    t.true(error instanceof AcceptedWithoutIdError, String(error));
    t.regex(error!.message, /^the server answered HTTP 202, but response body larger than \d+ bytes/);
    t.is(fake.tokens.length, 1, 'not sent again');
  });
});

test('a repeat refused (403 past the repeat window, 417) after a lost answer leaves the send in doubt, not refused', async (t) => {
  for (const status of [403, 417]) {
    await againstScriptedSends({ answer: (before) => (before === 0 ? 'lose' : { status, body: { errorDescription: 'refused' } }) }, 3, async (client, fake) => {
      const error = await t.throwsAsync(client.sendMessage({ to: 'GP001', workflowId: 'W', body: Buffer.from('result') }));
      t.true(error instanceof MeshConnectionError && error.mayHaveArrived, `${status}: ${String(error)}`);
      t.is(fake.tokens.length, 2);
    });
  }
});

test('beforeRetry runs before every try after the first, a retry after a 429 included (that try may be the one left in doubt); its failure ends the send as the tries so far leave it', async (t) => {
  await againstScriptedSends({ answer: (before) => (before === 0 ? { status: 429, body: {}, retryAfter: '0' } : 'lose') }, 1, async (client, fake) => {
    const noted: number[] = [];
    const error = await t.throwsAsync(client.sendMessage({ to: 'GP001', workflowId: 'W', body: Buffer.from('result'), beforeRetry: async () => void noted.push(Date.now()) }));
    t.true(error instanceof MeshConnectionError && error.mayHaveArrived, String(error));
    t.is(fake.arrivals.length, 2);
    t.is(noted.length, 1);
    t.true(noted[0]! > fake.arrivals[0]! && noted[0]! <= fake.arrivals[1]!, `noted at ${noted[0]}, tries at ${fake.arrivals.join(', ')}`);
    const refused = await t.throwsAsync(
      client.sendMessage({ to: 'GP001', workflowId: 'W', body: Buffer.from('result'), beforeRetry: () => Promise.reject(new Error('disk full')) }),
    );
    t.true(refused instanceof MeshConnectionError && refused.mayHaveArrived, `the lost try, not the hook's failure: ${String(refused)}`);
    t.is(fake.arrivals.length, 3, 'not repeated once the retry could not be noted');
  });
});

test('a server that accepts the connection and then says nothing fails the request as idle; a kept-alive socket gathers no listeners', async (t) => {
  const silent = createNetServer((socket) => socket.resume());
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const mailbox = await server.createMailbox();
  const transportFor = (origin: string, idleTimeoutMs?: number) =>
    new HttpsTransport({ origin, certPem: mailbox.certPem, keyPem: mailbox.keyPem, caPem: server.caPem, attemptHeaders: () => ({}), retries: 0, ...(idleTimeoutMs ? { idleTimeoutMs } : {}) });
  const stalled = transportFor(`https://127.0.0.1:${(silent.address() as AddressInfo).port}`, 300);
  try {
    await t.throwsAsync(stalled.send({ method: 'GET', path: '/', retry: 'idempotent' }), { message: /^cannot reach https:\/\/127\.0\.0\.1:\d+: no connection within 300 ms$/ });
  } finally {
    stalled.close();
    silent.close();
  }
  // Many requests on one kept-alive socket: each request's idle watch leaves with it.
  const live = transportFor(server.origin);
  try {
    const sockets = new Set<Socket>();
    for (let n = 0; n < 20; n++) {
      const response = await live.send({ method: 'GET', path: '/messageexchange/_ping', retry: 'idempotent' });
      sockets.add(response.body.socket as Socket);
      await response.body.resume().toArray();
    }
    t.is(sockets.size, 1, 'one socket, kept alive');
    const [socket] = [...sockets];
    t.true(socket!.listenerCount('data') <= 2, `data listeners: ${socket!.listenerCount('data')}`);
  } finally {
    live.close();
  }
});
