import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { TestFn } from 'ava';
import type { Services } from '../../server/src/domain/services.ts';
import { startTestServer, type TestMailbox, type TestServer } from './harness.ts';
import { mailboxRequest } from './http.ts';

export const SECOND = 1000;

/** Periods a test moves past by its own clock, in the order production has them. */
export const LIFECYCLE_TEST_PERIODS = {
  inboxExpiryMs: 60 * SECOND,
  uploadExpiryMs: 30 * SECOND,
  payloadRetentionMs: 10 * SECOND,
  messageRetentionMs: 300 * SECOND,
  deliveryCheckMs: 5 * SECOND,
};

/** A test file's server and its two mailboxes, a lab sending to a GP practice. */
export interface LifecycleSetting {
  readonly server: TestServer;
  readonly lab: TestMailbox;
  readonly gp: TestMailbox;
}

/** What tests of message lifecycles ask of the setting, made once it is. */
export interface LifecycleProbes {
  /** The services as they would be `ms` from now. */
  readonly later: (ms: number) => Services;
  readonly inboxOf: (mailbox: TestMailbox) => Promise<string[]>;
  /** How many objects a message has in the bucket. */
  readonly objectsOf: (messageId: string) => Promise<number>;
  readonly nextCheckOf: (messageId: string) => Promise<Date | undefined>;
}

/**
 * Registers the file's before and after hooks: a server with LIFECYCLE_TEST_PERIODS and no
 * worker (each test runs lifecycle checks itself, at the moments it chooses), payloads in object
 * storage (so purges are seen there), no limit to a mailbox's transfers at once, and two mailboxes; `ready` is given them once made.
 */
export function prepareLifecycleSetting(test: TestFn, ready: (setting: LifecycleSetting) => void): LifecycleProbes {
  let server: TestServer | undefined;
  test.before(async () => {
    // No transfer slots: every test of the file sends from one lab at once, each send an upload to object storage.
    server = await startTestServer({ periods: LIFECYCLE_TEST_PERIODS, worker: false, limits: { inlinePayloadBytes: 0, maxTransfersPerMailbox: 0 } });
    ready({ server, lab: await server.createMailbox(), gp: await server.createMailbox() });
  });
  test.after.always(async () => {
    await server?.close();
  });
  const made = (): TestServer => {
    if (!server) throw new Error('the lifecycle setting is not made yet');
    return server;
  };
  return {
    later: (ms) => ({ ...made().services, now: () => new Date(Date.now() + ms) }),
    inboxOf: async (mailbox) => (await mailboxRequest(made(), mailbox, { path: `/messageexchange/${mailbox.id}/inbox` })).json().messages,
    objectsOf: async (messageId) =>
      (await made().connections.s3.send(new ListObjectsV2Command({ Bucket: made().bucket, Prefix: `messages/${messageId}/` }))).KeyCount ?? 0,
    nextCheckOf: (messageId) => made().connections.schedule.nextCheck(messageId),
  };
}
