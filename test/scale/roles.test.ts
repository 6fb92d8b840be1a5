import test from 'ava';
import { mailboxRequest, rawRequest, sendMessage } from '../support/http.ts';
import { type ServerProcess, startServerProcess } from '../support/server-process.ts';

const periods = { MESHBOX_UPLOAD_EXPIRY_SECONDS: '0.5', MESHBOX_INBOX_EXPIRY_SECONDS: '1.5', MESHBOX_RATE_LIMIT_PER_SECOND: '0' };

test('two API processes and two workers share one Redis and bucket: sent via A, read via B, jobs take effect once; metrics per process', async (t) => {
  const processes: ServerProcess[] = [];
  try {
    const apiA = await startServerProcess({ ...periods, MESHBOX_ROLE: 'api' });
    processes.push(apiA);
    const { deployment } = apiA;
    const apiB = await startServerProcess({ ...periods, MESHBOX_ROLE: 'api' }, { deployment });
    processes.push(apiB);
    for (let i = 0; i < 2; i++) processes.push(await startServerProcess({ ...periods, MESHBOX_ROLE: 'worker' }, { deployment }));
    const [lab, gp] = [await apiA.createMailbox(), await apiA.createMailbox()];

    const collected = await sendMessage(apiA, lab, gp, 'sent through A');
    const listed = await mailboxRequest(apiB, gp, { path: `/messageexchange/${gp.id}/inbox` });
    t.true(listed.json().messages.includes(collected));
    const download = await mailboxRequest(apiB, gp, { path: `/messageexchange/${gp.id}/inbox/${collected}` });
    t.is(download.body.toString(), 'sent through A');
    t.is((await mailboxRequest(apiB, gp, { method: 'PUT', path: `/messageexchange/${gp.id}/inbox/${collected}/status/acknowledged` })).status, 200);

    const ignored = await sendMessage(apiB, lab, gp, 'never collected');
    let status = '';
    for (let attempt = 0; attempt < 100 && status !== 'undeliverable'; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      status = (await mailboxRequest(apiA, lab, { path: `/messageexchange/${lab.id}/outbox/tracking?messageID=${ignored}` })).json().status;
    }
    t.is(status, 'undeliverable', 'a worker process expired it');
    const labInbox = (await mailboxRequest(apiA, lab, { path: `/messageexchange/${lab.id}/inbox` })).json().messages;
    t.is(labInbox.length, 1, 'exactly one non-delivery report from two workers');

    const metricsOf = async (server: ServerProcess) => (await rawRequest(server, { path: '/metrics', clientCertificate: lab })).body.toString();
    const apiMetrics = await metricsOf(apiA);
    t.regex(apiMetrics, /meshbox_http_requests_total\{route="\/messageexchange\/:mailbox\/outbox",method="POST",status="202"\} \d+/);
    t.regex(apiMetrics, /meshbox_queue_jobs\{queue="message-lifecycle",state="delayed"\} \d+/);
    t.notRegex(apiMetrics, /meshbox_job_duration_seconds_count\{/, 'API processes run no jobs');
    const workerRuns = await Promise.all(
      processes.slice(2).map(async (worker) => Number(/meshbox_job_duration_seconds_count\{queue="message-lifecycle"\} (\d+)/.exec(await metricsOf(worker))?.[1] ?? 0)),
    );
    t.true(workerRuns.reduce((a, b) => a + b, 0) >= 1, `worker job runs ${workerRuns.join(', ')}`);
    const workerOnly = await mailboxRequest(processes[2]!, lab, { path: `/messageexchange/${lab.id}/inbox` });
    t.is(workerOnly.status, 404, 'a worker process serves no MESH endpoints');
  } finally {
    for (const server of processes.reverse()) await server.stop();
  }
});
