import test from 'ava';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { CertificateStore } from '../../server/src/store/certificates.ts';
import { MailboxStore } from '../../server/src/store/mailboxes.ts';
import { PasswordCipher } from '../../server/src/store/password-cipher.ts';
import { mapInBatches } from '../../shared/src/batches.ts';
import { redisKeys } from '../../server/src/store/keys.ts';
import { startTestServer, TEST_SECRET_KEY, type TestServer } from '../support/harness.ts';
import { mailboxRequest } from '../support/http.ts';
import { startTestRedis, type TestRedis } from '../support/redis-server.ts';

/**
 * The national directory at scale, on a Redis of the test's own, so that what a request
 * sends to Redis can be watched (MONITOR) without other test files' commands.
 */
let redis: TestRedis;
let server: TestServer;

test.before(async () => {
  redis = await startTestRedis();
  server = await startTestServer({ redisUrl: redis.url, worker: false, maxRequestsPerSecond: 0 });
});

test.after.always(async () => {
  await server?.close();
  await redis?.stop();
});

/** The commands (name upper-cased, then its arguments) Redis receives while `action` runs. */
async function commandsDuring(action: () => Promise<unknown>): Promise<string[][]> {
  const monitor = await redis.admin.monitor();
  const seen: string[][] = [];
  monitor.on('monitor', (_time: string, args: string[]) => seen.push([args[0]!.toUpperCase(), ...args.slice(1)]));
  try {
    await action();
    await server.requestsSettled();
    // MONITOR's lines come after the commands themselves: one more command marks the end.
    await redis.admin.ping('end-of-action');
    await new Promise<void>((resolve) => {
      const check = () => (seen.some((command) => command[0] === 'PING' && command[1] === 'end-of-action') ? resolve() : setTimeout(check, 10));
      check();
    });
  } finally {
    monitor.disconnect();
  }
  return seen;
}

test.serial('a request by a hub certificate granted 5,000 mailboxes does not read all 5,000 grants', async (t) => {
  const hub = await server.createMailbox();
  const served = await server.createMailbox();
  await server.services.mailboxes.grantCertificate(hub.id, served.id);
  // The hub's other 4,999 grants (an integration engine acting for a region's mailboxes).
  const grantKey = redisKeys(server.redisPrefix).certificateGrants(hub.id);
  const others = Array.from({ length: 4_999 }, (_, i) => `X${String(i).padStart(7, '0')}`);
  await server.redis.sadd(grantKey, ...others);
  t.is(await server.redis.scard(grantKey), 5_000);

  const inbox = `/messageexchange/${served.id}/inbox`;
  // Once before watching, so the mailbox reads are cached as in a steady poll.
  t.is((await mailboxRequest(server, served, { path: inbox, clientCertificate: hub })).status, 200);
  let status = 0;
  const commands = await commandsDuring(async () => {
    status = (await mailboxRequest(server, served, { path: inbox, clientCertificate: hub })).status;
  });
  t.is(status, 200);
  const onGrants = commands.filter((command) => command.includes(grantKey));
  t.true(onGrants.length > 0, 'the grant is checked');
  // Whether one mailbox is granted is one member's question (SISMEMBER): reading the whole
  // set sends 5,000 ids over the wire and scans them, on every request of every mailbox the hub serves.
  t.deepEqual(
    onGrants.filter(([name]) => name === 'SMEMBERS' || name === 'SSCAN' || name === 'SORT'),
    [],
    `commands on the grant set: ${onGrants.map(([name]) => name).join(', ')}`,
  );
});

/** Registers `count` mailboxes receiving `workflows`, through the store, 500 at a time. */
async function seedMailboxes(prefix: string, count: number, workflows: readonly string[]): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(6, '0')}`);
  await mapInBatches(ids, 500, (id) => server.services.mailboxes.create({ id, password: `pw-${id}`, name: `Practice ${id}`, odsCode: `O${id}`, workflows }));
  return ids;
}

test.serial('a workflow search of a national workflow (thousands of receivers; 28,000 at national size) does not read its receivers in one command', async (t) => {
  await seedMailboxes('N', 3_000, ['NATIONAL_WF']);
  const receivers = redisKeys(server.redisPrefix).workflowReceivers('NATIONAL_WF');
  t.is(await server.redis.scard(receivers), 3_000);
  const hub = await server.createMailbox();
  let body = '';
  const commands = await commandsDuring(async () => {
    const response = await mailboxRequest(server, hub, { path: '/messageexchange/workflowsearch/NATIONAL_WF' });
    t.is(response.status, 200);
    body = response.body.toString();
  });
  t.is((JSON.parse(body) as { results: unknown[] }).results.length, 3_000);
  // SMEMBERS of 28,000 ids holds Redis's one thread for ~15 ms (SLOWLOG on this machine; the
  // default slowlog threshold is 10 ms): every poll and send of every mailbox waits behind it, after
  // each directory change, in each API process, for each national workflow asked. The docs
  // promise the read is made "in batches so that other requests are answered meanwhile".
  const whole = commands.filter(([name, ...args]) => ['SMEMBERS', 'SINTER', 'SORT'].includes(name!) && args.includes(receivers));
  t.deepEqual(whole.map(([name]) => name), [], 'the receivers set is read whole in one command');
});

test.serial('admin mailbox list reads the directory a batch at a time, not every mailbox at once', async (t) => {
  await seedMailboxes('L', 2_000, ['SOME_WF']);
  // The admin command's store on a connection of its own, whose mailbox reads are counted as they go out and come back.
  const client = new Redis(redis.url);
  let inFlight = 0;
  let most = 0;
  const hgetall = client.hgetall.bind(client);
  (client as unknown as { hgetall: (key: string) => Promise<Record<string, string>> }).hgetall = (key: string) => {
    most = Math.max(most, ++inFlight);
    return hgetall(key).finally(() => inFlight--);
  };
  try {
    const store = new MailboxStore(client, redisKeys(server.redisPrefix), new PasswordCipher(TEST_SECRET_KEY));
    const listed = await store.list();
    t.true(listed.length >= 2_000);
    // At 50,000 mailboxes, `meshbox admin mailbox list` peaked at 433 MB RSS and took 5.6 s
    // (backlog, which reads more per mailbox in batches of 200: 156 MB, 2.1 s): every HGETALL, its
    // promise and its answer are held at once. shared/src/batches.ts: "a pass over every mailbox of
    // a large deployment keeps a bounded number of Redis commands in flight".
    t.true(most <= 500, `${most} mailbox reads in flight at once`);
  } finally {
    client.disconnect();
  }
});

test.serial('admin cert sign finds the certificates of a key without reading every certificate on record', async (t) => {
  const keys = redisKeys(server.redisPrefix);
  // A CA's certificates on record (serial -> key fingerprint), as recordIssued keeps them (50,000 at national size).
  const pipeline = server.redis.pipeline();
  for (let i = 0; i < 5_000; i++) pipeline.hset(keys.certificateKeys, i.toString(16).padStart(16, '0'), randomBytes(32).toString('hex'));
  await pipeline.exec();
  const certificates = new CertificateStore(server.redis, keys);
  const commands = await commandsDuring(() => certificates.ofKey(randomBytes(32).toString('hex')));
  // HGETALL of a 50,000-field hash held Redis for ~35 ms here (SLOWLOG), for each certificate
  // signed (every renewal), and grows with every certificate ever recorded.
  const whole = commands.filter(([name, key]) => ['HGETALL', 'HKEYS', 'HVALS'].includes(name!) && key === keys.certificateKeys);
  t.deepEqual(whole.map(([name]) => name), [], 'every certificate key on record is read to find one');
});
