import test from 'ava';
import { PayloadStore } from '../../server/src/store/payloads.ts';
import { advanceLifecycle } from '../../server/src/domain/lifecycle.ts';
import type { Services } from '../../server/src/domain/services.ts';
import { startTestServer, type TestServer } from '../support/harness.ts';
import { LIFECYCLE_TEST_PERIODS, SECOND } from '../support/lifecycle-setting.ts';
import { mailboxRequest, sendMessage } from '../support/http.ts';
import { overriding } from '../support/overriding.ts';

const periods = LIFECYCLE_TEST_PERIODS;

/** The server's services as they would be `ms` from now, with every object storage call counted by its command's name. */
function countingS3(server: TestServer, ms: number): { services: Services; calls: string[] } {
  const calls: string[] = [];
  const { s3 } = server.connections;
  const counted = overriding(s3, {
    send: (async (command: object) => {
      calls.push(command.constructor.name);
      return s3.send(command as never);
    }) as typeof s3.send,
  });
  const services = { ...server.services, payloads: new PayloadStore(counted, server.bucket), now: () => new Date(Date.now() + ms) };
  return { services, calls };
}

// A small message's payload is stored with its record in Redis, "one S3 round trip per message would cap small-message
// throughput at what the object store allows" (send.ts), and a report has no payload at all: their lifecycles have
// nothing in object storage to delete. Yet a burst of 20,000 acknowledgements or expiries of small messages sent
// 40,000 LIST requests to object storage (and 20,000 more for the reports).
test('the lifecycle of a small message kept in Redis, and of a report, asks object storage nothing', async (t) => {
  const server = await startTestServer({ periods, worker: false });
  t.teardown(() => server.close());
  const lab = await server.createMailbox();
  const gp = await server.createMailbox();

  // A small message, collected and acknowledged: its payload purged, then its record.
  const collected = await sendMessage(server, lab, gp, 'small result');
  t.true((await server.services.messages.get(collected))!.inlinePayload, 'kept in Redis with its record');
  t.is((await mailboxRequest(server, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${collected}/status/acknowledged` })).status, 200);
  const atPurge = countingS3(server, periods.payloadRetentionMs + SECOND);
  await advanceLifecycle(atPurge.services, collected);
  t.truthy((await server.services.messages.get(collected))!.payloadPurgedAt, 'its payload purged');
  const atRecordPurge = countingS3(server, periods.messageRetentionMs + SECOND);
  t.is(await advanceLifecycle(atRecordPurge.services, collected), undefined, 'its record purged');

  // A small message never collected: it expires, and its report, acknowledged by the sender, is purged in turn.
  const expired = await sendMessage(server, lab, gp, 'never collected');
  const atExpiry = countingS3(server, periods.inboxExpiryMs + SECOND);
  await advanceLifecycle(atExpiry.services, expired);
  const { reportId } = (await server.services.messages.get(expired))!;
  t.truthy(reportId);
  t.is((await mailboxRequest(server, lab, { method: 'PUT', path: `/messageexchange/${lab.id}/inbox/${reportId}/status/acknowledged` })).status, 200);
  const atReportPurge = countingS3(server, periods.inboxExpiryMs + periods.payloadRetentionMs + 2 * SECOND);
  await advanceLifecycle(atReportPurge.services, reportId);
  const atReportRecordPurge = countingS3(server, periods.messageRetentionMs + periods.inboxExpiryMs + 2 * SECOND);
  t.is(await advanceLifecycle(atReportRecordPurge.services, reportId), undefined, "the report's record purged");

  t.deepEqual(
    { atPurge: atPurge.calls, atRecordPurge: atRecordPurge.calls, atExpiry: atExpiry.calls, atReportPurge: atReportPurge.calls, atReportRecordPurge: atReportRecordPurge.calls },
    { atPurge: [], atRecordPurge: [], atExpiry: [], atReportPurge: [], atReportRecordPurge: [] },
  );
});

test("a report whose acknowledgement was cut off after its status leaves the sender's inbox within a payload retention, as any message", async (t) => {
  const server = await startTestServer({ periods, worker: false });
  t.teardown(() => server.close());
  const lab = await server.createMailbox();
  const gp = await server.createMailbox();
  const messageId = await sendMessage(server, lab, gp, 'never collected');
  await advanceLifecycle({ ...server.services, now: () => new Date(Date.now() + periods.inboxExpiryMs + SECOND) }, messageId);
  const { reportId } = (await server.services.messages.get(messageId))!;
  const report = (await server.services.messages.get(reportId))!;
  t.is(report.status, 'accepted');
  // The sender acknowledges it; the request stops after the status step (a process that died), and is not retried.
  t.is(await server.services.messages.acknowledge(reportId, lab.id, report.acceptedAt!), 'acknowledged');
  const next = await server.connections.schedule.nextCheck(reportId);
  t.true(next !== undefined && next.getTime() <= report.acceptedAt!.getTime() + Math.max(periods.payloadRetentionMs, periods.inboxExpiryMs / 10),
    `the report's next check (${next?.toISOString()}) comes within a payload retention of its delivery (${report.acceptedAt!.toISOString()})`);
  // And what that check does: the report leaves the inbox.
  await advanceLifecycle({ ...server.services, now: () => new Date(report.acceptedAt!.getTime() + periods.payloadRetentionMs + SECOND) }, reportId);
  const listed = (await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/inbox` })).json().messages as string[];
  t.false(listed.includes(reportId));
});
