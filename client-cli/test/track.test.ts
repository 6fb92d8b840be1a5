import test from 'ava';
import type { TrackingInfo } from '../src/client/mesh-client.ts';
import { trackingSummary } from '../src/commands/track.ts';

// A machine whose local time is not UTC: a MESH time read as local time would be hours out.
process.env.TZ = 'Asia/Kolkata';

/** The summary's rows, by label (a label is padded, then two spaces). */
const rows = (info: TrackingInfo): Record<string, string> =>
  Object.fromEntries(trackingSummary(info).split('\n').map((line) => /^(.*?) {2,}(.*)$/.exec(line)!.slice(1, 3) as [string, string]));

test("a MESH server's tracking times, which name no zone, are shown as the UTC they are, as meshbox's own are shown", (t) => {
  // The specification's example of v2 tracking: compact times, and an ISO one without a zone.
  const mesh = rows({
    message_id: '20210311101813838554_1B8F53',
    status: 'accepted',
    status_timestamp: '2020-06-01T12:21:52',
    upload_timestamp: '20200601122152',
    expiry_time: '20200606122153',
  });
  t.is(mesh.uploaded, '2020-06-01T12:21:52.000Z');
  t.is(mesh.expires, '2020-06-06T12:21:53.000Z');
  // The sandbox's, to the microsecond; meshbox's own, as they were.
  const sandbox = rows({ message_id: 'A', status: 'acknowledged', upload_timestamp: '2022-11-15T14:50:17.923288', acknowledged_timestamp: '2026-01-01T12:00:00.000Z' });
  t.is(sandbox.uploaded, '2022-11-15T14:50:17.923Z');
  t.is(sandbox.acknowledged, '2026-01-01T12:00:00.000Z');
  // What cannot be read as a time is shown as it came.
  t.is(rows({ message_id: 'A', status: 'accepted', upload_timestamp: 'yesterday' }).uploaded, 'yesterday');
});

test("an upload in progress on a server whose tracking does not say which chunks it holds (MESH) is not said to hold none", (t) => {
  // MESH's v2 tracking of an interrupted chunked send, as its sandbox gives it: no stored_chunks, no chunk_count.
  const mesh = rows({ message_id: 'A', status: 'uploading', local_id: 'res3', filename: 'huge.bin', upload_timestamp: '2026-12-02T08:22:23.679413' });
  t.is(mesh.status, "uploading, the server does not say how many of its chunks it holds (meshbox send --resume A <file>, with the first run's --chunk-size and --gzip, sends the rest)");
  t.is(rows({ message_id: 'A', status: 'Uploading', chunk_count: 400 }).status?.split(' (')[0], 'uploading, the server does not say how many of its 400 chunks it holds');
  // meshbox says.
  const meshbox = rows({ message_id: 'A', status: 'uploading', chunk_count: 4, stored_chunks: [1, 2], stored_chunk_bytes: [10, 10], content_encoding: null });
  t.is(meshbox.status, 'uploading, 2 of 4 chunks stored (meshbox send --resume A <file> --chunk-size 10 sends the rest)');
});

test("MESH's time of acknowledgement, its status_timestamp (it has no acknowledged_timestamp), is shown as meshbox's is", (t) => {
  // The specification's example of v2 tracking once the recipient has acknowledged.
  const mesh = rows({ message_id: '20210311101813838554_1B8F53', status: 'acknowledged', status_timestamp: '2020-06-01T12:21:52', upload_timestamp: '20200601122152' });
  t.is(mesh.acknowledged, '2020-06-01T12:21:52.000Z');
  // meshbox's own field, when given, is the one shown; a status_timestamp of another status is no acknowledgement.
  t.is(rows({ message_id: 'A', status: 'acknowledged', status_timestamp: '2026-01-02T00:00:00.000Z', acknowledged_timestamp: '2026-01-01T12:00:00.000Z' }).acknowledged, '2026-01-01T12:00:00.000Z');
  t.is(rows({ message_id: 'A', status: 'accepted', status_timestamp: '2020-06-01T12:21:52' }).acknowledged, undefined);
});
