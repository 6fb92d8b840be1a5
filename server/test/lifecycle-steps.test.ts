import test from 'ava';
import { nextLifecycleStep, undeliveredDescription } from '../src/domain/lifecycle.ts';
import type { MessageRecord } from '../src/store/messages.ts';

const periods = { inboxExpiryMs: 5_000, uploadExpiryMs: 1_000, payloadRetentionMs: 2_000, messageRetentionMs: 30_000, auditRetentionMs: 60_000, deliveryCheckMs: 500 };
const t0 = new Date('2026-11-22T10:00:00Z');
const plus = (ms: number): Date => new Date(t0.getTime() + ms);
const waiting = { recipientActive: true, payloadLost: false };
const deactivated = { recipientActive: false, payloadLost: false };

function message(overrides: Partial<MessageRecord>): MessageRecord {
  return {
    id: 'X', type: 'DATA', sender: 'A', recipient: 'B', workflowId: 'W', subject: '', localId: '', partnerId: '',
    fileName: '', checksum: '', contentType: '', compressed: false, encrypted: false, contentEncoding: '',
    totalChunks: 1, linkedMessageId: '', status: 'accepted',
    statusDetail: { code: '00', event: 'TRANSFER', description: '', success: true },
    size: 1, createdAt: t0, statusAt: t0, acceptedAt: t0, acknowledgedAt: undefined, payloadPurgedAt: undefined, inlinePayload: false,
    reportId: '', expiryPending: false, missingChunk: undefined, missingChunkNote: '',
    ...overrides,
  };
}

test('an uploading message is looked at every delivery-check period until the upload expiry, then is abandoned', (t) => {
  const uploading = message({ status: 'uploading', acceptedAt: undefined });
  t.deepEqual(nextLifecycleStep(uploading, waiting, plus(100), periods), { kind: 'wait', until: plus(600) });
  t.deepEqual(nextLifecycleStep(uploading, waiting, plus(999), periods), { kind: 'wait', until: plus(1_000) });
  t.deepEqual(nextLifecycleStep(uploading, waiting, plus(1_000), periods), { kind: 'abandon-upload' });
});

test('an accepted message expires at acceptance + inbox expiry, and is looked at once a payload retention meanwhile', (t) => {
  const accepted = message({ acceptedAt: plus(500) });
  t.deepEqual(nextLifecycleStep(accepted, waiting, plus(500), periods), { kind: 'wait', until: plus(2_500) });
  t.deepEqual(nextLifecycleStep(accepted, waiting, plus(5_000), periods), { kind: 'wait', until: plus(5_500) });
  t.deepEqual(nextLifecycleStep(accepted, waiting, plus(5_500), periods), { kind: 'expire', because: 'not-collected' });
});

test('an accepted message is looked at no more often than a tenth of the inbox expiry, however short the payload retention', (t) => {
  const accepted = message({ acceptedAt: plus(500) });
  const shortRetention = { ...periods, payloadRetentionMs: 100 };
  t.deepEqual(nextLifecycleStep(accepted, waiting, plus(500), shortRetention), { kind: 'wait', until: plus(1_000) });
  t.deepEqual(nextLifecycleStep(accepted, waiting, plus(5_200), shortRetention), { kind: 'wait', until: plus(5_500) });
});

test("an accepted message whose recipient's mailbox is deactivated expires at once; an upload waits to be complete", (t) => {
  t.deepEqual(nextLifecycleStep(message({ acceptedAt: plus(500) }), deactivated, plus(600), periods), { kind: 'expire', because: 'recipient-deactivated' });
  const uploading = message({ status: 'uploading', acceptedAt: undefined });
  t.deepEqual(nextLifecycleStep(uploading, deactivated, plus(100), periods), { kind: 'wait', until: plus(600) });
  const acknowledged = message({ status: 'acknowledged', statusAt: plus(1_000) });
  t.deepEqual(nextLifecycleStep(acknowledged, deactivated, plus(1_000), periods), { kind: 'wait', until: plus(3_000) });
});

test('an accepted message whose payload a check found lost expires at once, whatever the clock says; one whose recipient is deactivated goes back as such', (t) => {
  const lost = { recipientActive: true, payloadLost: true };
  t.deepEqual(nextLifecycleStep(message({ acceptedAt: plus(500) }), lost, plus(600), periods), { kind: 'expire', because: 'payload-lost' });
  t.deepEqual(nextLifecycleStep(message({ acceptedAt: plus(500) }), { ...lost, recipientActive: false }, plus(600), periods), { kind: 'expire', because: 'recipient-deactivated' });
});

test('an expiry interrupted half-way is finished before anything else, whatever the clock says', (t) => {
  const interrupted = message({ status: 'undeliverable', statusAt: plus(5_000), reportId: 'R', expiryPending: true });
  t.deepEqual(nextLifecycleStep(interrupted, waiting, plus(5_000), periods), { kind: 'finish-expiry' });
  t.deepEqual(nextLifecycleStep(interrupted, waiting, plus(40_000), periods), { kind: 'finish-expiry' });
  const finished = message({ status: 'undeliverable', statusAt: plus(5_000), reportId: 'R' });
  t.deepEqual(nextLifecycleStep(finished, waiting, plus(5_000), periods), { kind: 'wait', until: plus(7_000) });
});

test('a finished message has its payload purged after the retention (an abandoned upload\'s at once), then its record after the message retention', (t) => {
  for (const status of ['acknowledged', 'undeliverable', 'error'] as const) {
    const done = message({ status, statusAt: plus(1_000) });
    if (status === 'error') {
      t.deepEqual(nextLifecycleStep(done, waiting, plus(1_000), periods), { kind: 'purge-payload' }, status);
    } else {
      t.deepEqual(nextLifecycleStep(done, waiting, plus(2_999), periods), { kind: 'wait', until: plus(3_000) }, status);
      t.deepEqual(nextLifecycleStep(done, waiting, plus(3_000), periods), { kind: 'purge-payload' }, status);
    }
    const purged = message({ status, statusAt: plus(1_000), payloadPurgedAt: plus(3_000) });
    t.deepEqual(nextLifecycleStep(purged, waiting, plus(3_000), periods), { kind: 'wait', until: plus(30_000) }, status);
    t.deepEqual(nextLifecycleStep(purged, waiting, plus(30_000), periods), { kind: 'purge-message' }, status);
  }
});

test('an acknowledged report has its (empty) payload purged a payload retention on, as any message, so that it is 410 from then; then its record at the message retention', (t) => {
  const report = message({ type: 'REPORT', totalChunks: 0, status: 'acknowledged', statusAt: t0 });
  t.deepEqual(nextLifecycleStep(report, waiting, plus(1), periods), { kind: 'wait', until: plus(2_000) });
  t.deepEqual(nextLifecycleStep(report, waiting, plus(2_000), periods), { kind: 'purge-payload' });
  t.deepEqual(nextLifecycleStep({ ...report, payloadPurgedAt: plus(2_000) }, waiting, plus(2_001), periods), { kind: 'wait', until: plus(30_000) });
});

test('the non-delivery description speaks in days when the period is whole days', (t) => {
  t.is(undeliveredDescription(5 * 86_400_000), 'Message not collected by recipient after 5 days');
  t.is(undeliveredDescription(90_000), 'Message not collected by recipient after 90 seconds');
});
