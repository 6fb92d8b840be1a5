import test from 'ava';
import { waitFor } from '../../scripts/services/processes.ts';
import { capturedLogger, type LogLine } from '../../server/test/support/captured-log.ts';
import { startTestServer } from '../support/harness.ts';
import { mailboxRequest, openMailboxRequest, sendMessage } from '../support/http.ts';

// What identifies a patient in a pathology message's metadata: an NHS number and a name.
const LOCAL_ID = 'NHS-943-476-5919';
const SUBJECT = 'FBC result for Jane Doe';
const FILE_NAME = 'jane-doe-9434765919.hl7';
const PAYLOAD = 'MSH|^~\\&|LAB|RESULT FOR JANE DOE';

/** Access lines of trackings by local id (logged once each answer has closed). */
const trackingLines = (lines: readonly LogLine[]) => lines.filter((line) => line.msg === 'request' && String(line.path).includes('/outbox/tracking/'));

test("no server log line carries a message's local id, subject, file name or payload, the v1 tracking by local id (whose path holds the local id) included", async (t) => {
  const { logger, lines } = capturedLogger();
  const server = await startTestServer({ logger, worker: false });
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    const messageId = await sendMessage(server, lab, gp, PAYLOAD, { 'mex-LocalID': LOCAL_ID, 'mex-Subject': SUBJECT, 'mex-FileName': FILE_NAME });
    t.is((await mailboxRequest(server, gp, { path: `/messageexchange/${gp.id}/inbox/${messageId}` })).status, 200);
    // What the meshbox CLI asks (send --local-id, dispatch after a lost answer), and MESH's v1 clients.
    const tracked = await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking/${encodeURIComponent(LOCAL_ID)}` });
    t.is((tracked.json() as { messageId: string }).messageId, messageId);
    // A base URL ending in a slash, and a local id holding the route's own words: paths not served, logged all the same.
    t.is((await mailboxRequest(server, lab, { path: `/messageexchange//${lab.id}/outbox/tracking/${LOCAL_ID}` })).status, 404);
    t.is((await mailboxRequest(server, lab, { path: `/messageexchange/${lab.id}/outbox/tracking/${LOCAL_ID}/outbox/tracking/x` })).status, 404);
    t.true(await waitFor(async () => trackingLines(lines).length === 3, 10_000, 20));
    t.deepEqual(
      trackingLines(lines).map((line) => line.path),
      [`/messageexchange/${lab.id}/outbox/tracking/:localId`, `/messageexchange//${lab.id}/outbox/tracking/:localId`, `/messageexchange/${lab.id}/outbox/tracking/:localId`],
    );
    const logged = lines.map((line) => JSON.stringify(line));
    for (const needle of [LOCAL_ID, encodeURIComponent(LOCAL_ID), '9434765919', 'Jane Doe', 'jane-doe', 'MSH|']) {
      t.deepEqual(logged.filter((line) => line.includes(needle)), [], `logged: ${needle}`);
    }
  } finally {
    await server.close();
  }
});

test('a tracking by local id whose client went away before its refusal (300: several messages carry it; 404: none) logs the refusal by its code, not the local id', async (t) => {
  const { logger, lines } = capturedLogger();
  const server = await startTestServer({ logger, worker: false });
  try {
    const [lab, gp] = [await server.createMailbox(), await server.createMailbox()];
    for (let i = 0; i < 2; i++) await sendMessage(server, lab, gp, PAYLOAD, { 'mex-LocalID': LOCAL_ID });
    const missing = 'NHS-485-777-3456';
    const tries = 10;
    for (const localId of [LOCAL_ID, missing]) {
      for (let attempt = 0; attempt < tries; attempt++) {
        const request = openMailboxRequest(server, lab, { method: 'GET', path: `/messageexchange/${lab.id}/outbox/tracking/${encodeURIComponent(localId)}` });
        request.on('error', () => undefined);
        // Gone as soon as its request is out: the server finds the socket destroyed as it refuses.
        request.end(() => request.destroy());
      }
    }
    t.true(await waitFor(async () => trackingLines(lines).length === 2 * tries, 10_000, 20));
    const wentAway = lines.filter((line) => line.msg === 'client went away');
    t.true(wentAway.length > 0, 'no refusal met a client gone');
    t.deepEqual([...new Set(wentAway.map((line) => line.status))].filter((status) => status !== 300 && status !== 404), [], 'refusals logged by status');
    t.true(wentAway.every((line) => typeof line.error === 'string' && line.err === undefined), 'and MESH code, not the error');
    const logged = lines.map((line) => JSON.stringify(line));
    t.deepEqual(logged.filter((line) => line.includes(LOCAL_ID) || line.includes(missing)), []);
  } finally {
    await server.close();
  }
});
