import test from 'ava';
import { buildAuthorizationHeader } from '../../shared/src/protocol/index.ts';
import { issueMailboxCertificate } from '../../shared/src/pki/index.ts';
import { startTestServer, type KeyPair, type TestMailbox, type TestServer } from '../support/harness.ts';
import { mailboxRequest, type RawResponse, sendMessage } from '../support/http.ts';

let server: TestServer;
let alice: TestMailbox;
let bob: TestMailbox;
let revokedAliceCertificate: KeyPair;
let usedToken: string;
const ids = { incoming: '', outgoing: '', uploading: '', localId: 'matrix-local-id' };

interface Endpoint {
  readonly name: string;
  readonly method: string;
  readonly path: (mailbox: string) => string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly success: number;
}

const endpoints: readonly Endpoint[] = [
  { name: 'handshake', method: 'POST', path: (mb) => `/messageexchange/${mb}`, success: 200 },
  { name: 'inbox', method: 'GET', path: (mb) => `/messageexchange/${mb}/inbox`, success: 200 },
  { name: 'count', method: 'GET', path: (mb) => `/messageexchange/${mb}/count`, success: 200 },
  { name: 'head', method: 'HEAD', path: (mb) => `/messageexchange/${mb}/inbox/${ids.incoming}`, success: 200 },
  { name: 'download', method: 'GET', path: (mb) => `/messageexchange/${mb}/inbox/${ids.incoming}`, success: 200 },
  { name: 'track', method: 'GET', path: (mb) => `/messageexchange/${mb}/outbox/tracking?messageID=${ids.outgoing}`, success: 200 },
  { name: 'track by local id', method: 'GET', path: (mb) => `/messageexchange/${mb}/outbox/tracking/${ids.localId}`, success: 200 },
  {
    name: 'send',
    method: 'POST',
    path: (mb) => `/messageexchange/${mb}/outbox`,
    headers: { 'mex-To': 'BOBPLACEHOLDER', 'mex-WorkflowID': 'MATRIX' },
    body: 'matrix',
    success: 202,
  },
  {
    name: 'upload chunk',
    method: 'POST',
    path: (mb) => `/messageexchange/${mb}/outbox/${ids.uploading}/2`,
    headers: { 'mex-Chunk-Range': '2:3' },
    body: 'chunk two',
    success: 202,
  },
  // Last: it changes state (the message leaves the inbox).
  { name: 'acknowledge', method: 'PUT', path: (mb) => `/messageexchange/${mb}/inbox/${ids.incoming}/status/acknowledged`, success: 200 },
];

/**
 * The server's clock: moved on a minute for each endpoint, so that the matrix's wrong passwords
 * (one an endpoint) never add up to a certificate's failed logins in a minute (then 429), however
 * many endpoints it grows to.
 */
const clock = { now: Date.now() };

test.before(async () => {
  server = await startTestServer({ appServices: (services) => ({ ...services, now: () => new Date(clock.now) }) });
  alice = await server.createMailbox();
  bob = await server.createMailbox();
  const revoked = issueMailboxCertificate({ ca: server.ca, mailboxId: alice.id });
  await server.services.certificates.revoke(revoked.serialNumber, new Date());
  revokedAliceCertificate = revoked;
  ids.incoming = await sendMessage(server, bob, alice, 'for alice');
  ids.outgoing = await sendMessage(server, alice, bob, 'from alice', { 'mex-LocalID': ids.localId });
  const upload = await mailboxRequest(server, alice, {
    method: 'POST',
    path: `/messageexchange/${alice.id}/outbox`,
    headers: { 'mex-To': bob.id, 'mex-WorkflowID': 'MATRIX', 'mex-Chunk-Range': '1:3' },
    body: 'chunk one',
  });
  ids.uploading = upload.json().message_id;
  usedToken = buildAuthorizationHeader({ mailboxId: alice.id, password: alice.password, sharedKey: server.sharedKey });
  // Used for a request the matrix does not make: a token's identical retry of a harmless request is served (api.md).
  await mailboxRequest(server, alice, { path: `/messageexchange/${alice.id}/inbox/20200101000000000000_USEDUP`, authorization: usedToken });
});

test.after.always(async () => {
  await server?.close();
});

const tokenFor = (mailbox: TestMailbox, overrides: { password?: string; at?: Date } = {}) =>
  buildAuthorizationHeader({
    mailboxId: mailbox.id,
    password: overrides.password ?? mailbox.password,
    sharedKey: server.sharedKey,
    ...(overrides.at ? { at: overrides.at } : {}),
  });

const credentials = (): Record<string, () => string> => ({
  'valid token': () => tokenFor(alice),
  'wrong password': () => tokenFor(alice, { password: 'not-the-password' }),
  "another mailbox's token": () => tokenFor(bob),
  'replayed token': () => usedToken,
  'stale token': () => tokenFor(alice, { at: new Date(Date.now() - 3 * 60 * 60 * 1000) }),
});

const certificates = (): Record<string, KeyPair | null> => ({
  'own certificate': alice,
  "another mailbox's certificate": bob,
  'revoked certificate': revokedAliceCertificate,
  'no certificate': null,
});

function request(endpoint: Endpoint, certificate: KeyPair | null, authorization: string, mailboxId = alice.id): Promise<RawResponse> {
  const headers = { ...endpoint.headers };
  if (headers['mex-To']) headers['mex-To'] = bob.id;
  return mailboxRequest(server, alice, {
    method: endpoint.method,
    path: endpoint.path(mailboxId),
    headers,
    ...(endpoint.body ? { body: endpoint.body } : {}),
    clientCertificate: certificate,
    authorization,
  });
}

test.serial('every endpoint × certificate × token: only own certificate with a valid token is served; every refusal is the same 403', async (t) => {
  let refusalBody: unknown;
  for (const endpoint of endpoints) {
    clock.now += 60_000;
    for (const [certificateName, certificate] of Object.entries(certificates())) {
      for (const [credentialName, credential] of Object.entries(credentials())) {
        const label = `${endpoint.name} / ${certificateName} / ${credentialName}`;
        const shouldSucceed = certificateName === 'own certificate' && credentialName === 'valid token';
        if (certificate === null) {
          await t.throwsAsync(request(endpoint, certificate, credential()), undefined, label);
          continue;
        }
        const response = await request(endpoint, certificate, credential());
        if (shouldSucceed) {
          t.is(response.status, endpoint.success, label);
          continue;
        }
        t.is(response.status, 403, label);
        if (endpoint.method === 'HEAD') continue;
        const { detail } = response.json();
        refusalBody ??= detail;
        t.deepEqual(detail, refusalBody, `${label}: the same refusal`);
      }
    }
  }
});

test.serial('a refusal says nothing about whether the mailbox or message exists', async (t) => {
  const ghost = 'NOSUCHMBX1';
  const refusals = await Promise.all([
    request(endpoints[1]!, bob, tokenFor(alice), ghost),
    request(endpoints[1]!, bob, tokenFor(alice), alice.id),
    mailboxRequest(server, bob, { path: `/messageexchange/${alice.id}/inbox/20990101000000000000_ABCDEF` }),
    mailboxRequest(server, bob, { path: `/messageexchange/${alice.id}/inbox/${ids.outgoing}` }),
  ]);
  for (const refusal of refusals) {
    t.is(refusal.status, 403);
    t.deepEqual(refusal.json().detail, refusals[0]!.json().detail);
  }
});
