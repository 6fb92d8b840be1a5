import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { ensureLocalServices, stopLocalServices } from '../../scripts/services/index.ts';
import { advanceLifecycle } from '../../server/src/domain/lifecycle.ts';
import { buildAuthorizationHeader } from '../../shared/src/protocol/index.ts';
import { startTestServer, type TestServer } from '../support/harness.ts';
import { mailboxRequest, sendMessage } from '../support/http.ts';

test('Redis killed (-9) and restarted with AOF: messages in every state, mailboxes and used tokens are all still there', async (t) => {
  // A private Redis and S3: killing the shared ones would break the other test files.
  const dataDir = await mkdtemp(join(tmpdir(), 'meshbox-restart-'));
  let server: TestServer | undefined;
  try {
    const services = await ensureLocalServices({ dataDir });
    const periods = { inboxExpiryMs: 60_000 };
    server = await startTestServer({ redisUrl: services.redisUrl, s3Endpoint: services.s3.endpoint, periods, worker: false });
    const state = { redisPrefix: server.redisPrefix, bucket: server.bucket, sharedKey: server.sharedKey };
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];

    const accepted = await sendMessage(server, lab, gp, 'accepted, not yet downloaded');
    const acknowledged = await sendMessage(server, lab, gp, 'acknowledged');
    await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${acknowledged}/status/acknowledged` });
    const expired = await sendMessage(server, lab, gp, 'never collected');
    await advanceLifecycle({ ...server.services, now: () => new Date(Date.now() + 120_000) }, expired);
    const uploading = await sendMessage(server, lab, gp, 'half', { 'mex-WorkflowID': 'W', 'mex-Chunk-Range': '1:2' });
    const usedToken = buildAuthorizationHeader({ mailboxId: gp.id, password: gp.password, sharedKey: server.sharedKey });
    t.is((await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/count`, authorization: usedToken })).status, 200);
    await server.close({ keepState: true });
    server = undefined;

    // appendfsync everysec: what is more than a second old is on disk.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const { redis } = JSON.parse(await readFile(join(dataDir, 'services.json'), 'utf8')) as { redis: { pid: number } };
    process.kill(redis.pid, 'SIGKILL');
    const restarted = await ensureLocalServices({ dataDir });
    t.not(restarted.redisUrl, services.redisUrl, 'a new Redis process');

    server = await startTestServer({ redisUrl: restarted.redisUrl, s3Endpoint: restarted.s3.endpoint, periods, worker: false, ...state });
    const track = async (messageId: string) =>
      (await mailboxRequest(server!, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${messageId}` })).json().status;
    t.is(await track(accepted), 'accepted');
    t.is(await track(acknowledged), 'acknowledged');
    t.is(await track(expired), 'undeliverable');
    t.is(await track(uploading), 'uploading');

    const inbox = (await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox` })).json().messages;
    t.deepEqual(inbox, [accepted]);
    const download = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${accepted}` });
    t.is(download.body.toString(), 'accepted, not yet downloaded');
    const labInbox = (await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/inbox` })).json().messages;
    t.is(labInbox.length, 1, 'the non-delivery report survived');
    // Another request than the one it was used for: its identical retry would be served (api.md).
    const replay = await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox`, authorization: usedToken });
    t.is(replay.status, 403, 'a used token stays used across the restart');
  } finally {
    await server?.close();
    await stopLocalServices({ dataDir });
    await rm(dataDir, { recursive: true, force: true });
  }
});
