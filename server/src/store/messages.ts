import { randomBytes, randomUUID } from 'node:crypto';
import type { MessageStatus, MessageType } from '../../../shared/src/protocol/index.ts';
import type { RedisKeys } from './keys.ts';
import { acrossFailover } from './failover-retry.ts';
import { LuaScript } from './lua-script.ts';
import { connectionsLostBy, escapeGlob, masters, pingEveryMaster, type RedisClient, scanPages } from './redis-client.ts';

const reserveIdScript = new LuaScript('reserve-id');
const releaseIdScript = new LuaScript('release-id');
const createMessageScript = new LuaScript('create-message');
const allocateChunkVersionScript = new LuaScript('allocate-chunk-version');
const storeChunkScript = new LuaScript('store-chunk', ['accept-when-complete']);
const deliverScript = new LuaScript('deliver');
const leaveInboxScript = new LuaScript('leave-inbox', ['redis-now-ms']);
const acknowledgeScript = new LuaScript('acknowledge');
const expireScript = new LuaScript('expire-message');
const forgetMissingChunkScript = new LuaScript('forget-missing-chunk');
const noteMissingChunkScript = new LuaScript('note-missing-chunk');
const abandonScript = new LuaScript('abandon-upload');
const updateExisting = new LuaScript('update-existing-hash');
const senderOnPrimaryScript = new LuaScript('sender-on-primary');

/**
 * How long a message that left an inbox is kept from being delivered into it again
 * (leave-inbox.lua): longer than a delivery issued before its send's answer can land late (sent
 * again on a new connection after the 10 s of silence that drops one, or by a slower API process).
 */
const LEFT_INBOX_REMEMBERED_MS = 2 * 60_000;

/** Keys a SCAN of the records looks at in one command: each command short, a page's ids at hand. */
const SCAN_PAGE = 1000;

/** A message id held for a send while its chunk 1 streams in; recording the message ends it. */
export interface IdReservation {
  /** Ends it now: the send failed before recording its message (else it would be held a day). */
  readonly release: () => Promise<void>;
}

/** What the sender said about a message; stored as given, returned on download and tracking. */
export interface MessageMetadata {
  readonly type: MessageType;
  readonly sender: string;
  readonly recipient: string;
  readonly workflowId: string;
  readonly subject: string;
  readonly localId: string;
  readonly partnerId: string;
  readonly fileName: string;
  readonly checksum: string;
  readonly contentType: string;
  readonly compressed: boolean;
  readonly encrypted: boolean;
  /** Transport encoding of every stored chunk: '' or 'gzip'. */
  readonly contentEncoding: string;
  readonly totalChunks: number;
  readonly linkedMessageId: string;
}

export interface MessageStatusDetail {
  readonly code: string;
  readonly event: string;
  readonly description: string;
  readonly success: boolean;
}

export interface MessageRecord extends MessageMetadata {
  readonly id: string;
  readonly status: MessageStatus;
  readonly statusDetail: MessageStatusDetail;
  /** Bytes stored over all chunks, known once the message is accepted. */
  readonly size: number;
  readonly createdAt: Date;
  readonly statusAt: Date;
  readonly acceptedAt: Date | undefined;
  readonly acknowledgedAt: Date | undefined;
  /** When the payload was deleted from object storage after its retention. */
  readonly payloadPurgedAt: Date | undefined;
  /** A small message whose payload is kept in Redis with its record, not in object storage. */
  readonly inlinePayload: boolean;
  /** The non-delivery report sent for it when it expired ('' when none). */
  readonly reportId: string;
  /** Expired, but not yet out of the inbox with its report delivered (a step was interrupted). */
  readonly expiryPending: boolean;
  /** A chunk a download found missing from object storage, for the lifecycle check to verify (noteMissingChunk). */
  readonly missingChunk: number | undefined;
  /** Which note of a missing chunk missingChunk is (counted up by each). */
  readonly missingChunkNote: string;
}

export interface StoredChunkSize {
  readonly number: number;
  readonly size: number;
}

export type CreateOutcome = 'exists' | 'uploading' | 'accepted';
export type StoreChunkOutcome =
  | 'not_found'
  | 'forbidden'
  | 'abandoned'
  | 'locked'
  | 'range'
  | 'encoding'
  | 'too_large'
  | 'uploading'
  | 'accepted'
  | 'recorded';
export type AcknowledgeOutcome = 'not_found' | 'uploading' | 'gone' | 'acknowledged';

export interface InboxBacklog {
  readonly count: number;
  /** The message first in the inbox; `since` undefined when its record is gone (it is about to leave). */
  readonly oldest: { readonly messageId: string; readonly since: Date | undefined } | undefined;
}

export interface LocalIdMatches {
  readonly count: number;
  readonly ids: readonly string[];
}

export interface InboxPage {
  readonly messageIds: readonly string[];
  /** Inbox position to continue after; undefined on the last page. */
  readonly next: number | undefined;
}

const ACCEPTED_STATUS: MessageStatusDetail = {
  code: '00',
  event: 'TRANSFER',
  description: 'Transferred to recipient mailbox',
  success: true,
};

/** An upload under way has been transferred nowhere yet: no code, event or description (MESH's sandbox gives none either). */
const UPLOADING_STATUS: MessageStatusDetail = { code: '', event: '', description: '', success: true };

/**
 * Message state in Redis. A message's own keys share one hash slot and each change to them is
 * one Lua script, so it is atomic. Inboxes live in their mailbox's slot: a message enters its
 * recipient's inbox only after it is accepted, and leaves it after it is acknowledged or
 * expired, so an inbox never lists what cannot be downloaded; those follow-up steps are
 * idempotent and repeated when an interrupted operation is retried.
 */
export class MessageStore {
  readonly #redis: RedisClient;
  readonly #keys: RedisKeys;

  constructor(redis: RedisClient, keys: RedisKeys) {
    this.#redis = redis;
    this.#keys = keys;
  }

  /** Claims a fresh message id before its payload is stored; undefined when it is taken. */
  async reserveId(id: string): Promise<IdReservation | undefined> {
    // Held a day: longer than any single chunk upload can take. A value of the claim's own tells
    // its command sent again by ioredis (its answer lost) from another send's claim.
    const claim = randomUUID();
    const reservation = this.#keys.messageIdReservation(id);
    if ((await reserveIdScript.run(this.#redis, [this.#keys.message(id), reservation], [86_400, claim])) !== 1) return undefined;
    return { release: async () => void (await releaseIdScript.run(this.#redis, [reservation], [claim])) };
  }

  /**
   * Records a message whose chunk 1 is stored; accepts it when that was its only chunk (then
   * deliver it). A small single-chunk message passes its payload here instead, to be stored
   * with it atomically; its id needs no reservation ('exists' when another send holds it).
   */
  async create(
    id: string,
    metadata: MessageMetadata,
    firstChunkSize: number,
    now: Date,
    inlinePayload?: Buffer,
  ): Promise<CreateOutcome> {
    return this.#record(id, metadata, ACCEPTED_STATUS, now, { size: firstChunkSize, inlinePayload });
  }

  async #record(
    id: string,
    metadata: MessageMetadata,
    status: MessageStatusDetail,
    now: Date,
    firstChunk?: { readonly size: number; readonly inlinePayload: Buffer | undefined },
  ): Promise<CreateOutcome> {
    const keys = this.#keys;
    const inlinePayload = firstChunk?.inlinePayload;
    const at = String(now.getTime());
    const outcome: CreateOutcome = (firstChunk ? 1 : 0) >= metadata.totalChunks ? 'accepted' : 'uploading';
    const fields: Record<string, string> = {
      ...serialiseMetadata(metadata),
      status: outcome,
      // Most messages never leave the accepted status detail: it is what an absent one means.
      ...(status === ACCEPTED_STATUS
        ? {}
        : { statusCode: status.code, statusEvent: status.event, statusDescription: status.description, statusSuccess: status.success ? '1' : '0' }),
      createdAt: at,
      statusAt: at,
      // Chunk sizes are only asked for while the upload goes on; an accepted message has its size.
      ...(outcome === 'accepted'
        ? { size: String(firstChunk?.size ?? 0), acceptedAt: at }
        : firstChunk
          ? { [`${CHUNK_FIELD_PREFIX}1`]: String(firstChunk.size), storedChunks: '1', storedBytes: String(firstChunk.size) }
          : {}),
      inline: inlinePayload ? '1' : '',
    };
    const recorded = await createMessageScript.run(
      this.#redis,
      [keys.message(id), keys.messageIdReservation(id)],
      [
        // A small message's id is claimed by its record, not reserved before: another send's reservation wins.
        inlinePayload ? '1' : '',
        // Empty fields read back as '' anyway; not storing them keeps each record small.
        ...Object.entries(fields).filter(([, value]) => value !== '').flat(),
        ...(inlinePayload ? [INLINE_PAYLOAD_FIELD, inlinePayload] : []),
      ],
    );
    return recorded === 1 ? outcome : 'exists';
  }

  /**
   * Makes a message findable by its sender's local id (nothing when it has none). Done once it
   * is recorded, so never for an id that is someone else's (a clash) or has no record; again
   * by a lifecycle check should that step have failed (repeating it changes nothing).
   */
  async indexLocalId(id: string, message: Pick<MessageMetadata, 'sender' | 'localId'>): Promise<void> {
    if (message.localId && message.sender) await this.#redis.sadd(this.#keys.localIds(message.sender, message.localId), id);
  }

  /**
   * Puts an accepted message into its recipient's inbox unless it is there, or has left it lately
   * (leave-inbox.lua: a recipient that knew the id from its sender, the same organisation's, and
   * acknowledged the message through another API process before this delivery landed). Only for a
   * delivery that no other attempt can have overtaken: a new single-chunk message, whose status
   * nothing else but its first lifecycle check can move on before it is listed (the send looks
   * again if it took so long that the check may have come: see `leaveInboxUnlessAccepted`). Every other delivery is
   * `deliverChecked`. The status is read again only when a connection closed meanwhile: ioredis
   * may then have run the delivery again, on the next connection (or, on a cluster, another
   * node's), perhaps after the recipient (through another process) had listed and acknowledged
   * what the first run delivered.
   */
  async deliver(id: string, recipient: string): Promise<void> {
    const lostBefore = connectionsLostBy(this.#redis);
    await this.#addToInbox(id, recipient);
    if (connectionsLostBy(this.#redis) !== lostBefore) await this.leaveInboxUnlessAccepted(id, recipient);
  }

  /**
   * Delivers a message that another attempt may deliver too (a chunk upload and its retry, two
   * workers finishing one expiry), so that one attempt's delivery can land after the recipient
   * has acknowledged the message, or after it expired.
   */
  async deliverChecked(id: string, recipient: string): Promise<void> {
    await this.#addToInbox(id, recipient);
    await this.leaveInboxUnlessAccepted(id, recipient);
  }

  async #addToInbox(id: string, recipient: string): Promise<void> {
    await deliverScript.run(this.#redis, [this.#keys.inbox(recipient), this.#keys.inboxSequence(recipient), this.#keys.inboxLeft(recipient)], [id]);
  }

  /**
   * After a delivery another may have overtaken: acknowledgement and expiry change the status
   * first and leave the inbox after, and the inbox lives in another hash slot; so the status is
   * read again once the delivery is done, and the message leaves the inbox if it has moved on
   * (or is gone).
   */
  async leaveInboxUnlessAccepted(id: string, recipient: string): Promise<void> {
    if ((await this.#redis.hget(this.#keys.message(id), 'status')) !== 'accepted') await this.leaveInbox(id, recipient);
  }

  /**
   * The version naming a new upload of one of the message's chunks (its object), greater than
   * any before it, and naming the upload's copy (newChunkCopyId: a retry's is its first try's);
   * undefined when the message is gone.
   */
  async allocateChunkVersion(messageId: string, copyId: string): Promise<string | undefined> {
    const sequence = (await allocateChunkVersionScript.run(this.#redis, [this.#keys.message(messageId)], [])) as number | null;
    // The random part keeps object names apart should Redis lose the latest count (a failover).
    return sequence === null ? undefined : `${sequence}-${copyId}-${randomBytes(4).toString('hex')}`;
  }

  /**
   * Records chunk n of the sender's uploading message, already in object storage as the object
   * of `version` (allocateChunkVersion); 'accepted': deliver it next; 'recorded': recorded
   * already, by this upload or one begun later, which stays the chunk whichever is recorded last. `replacedVersion`: the
   * version of the copy not recorded (to delete), undefined when there is none. Not recorded
   * (any refusal): the object of `version` is nobody's.
   */
  async storeChunk(
    messageId: string,
    sender: string,
    chunk: { readonly number: number; readonly size: number; readonly contentEncoding: string; readonly version: string },
    now: Date,
    maxMessageBytes: number,
  ): Promise<{ readonly outcome: StoreChunkOutcome; readonly replacedVersion: string | undefined }> {
    const [outcome, replaced] = (await storeChunkScript.run(
      this.#redis,
      [this.#keys.message(messageId)],
      [sender, chunk.number, chunk.size, now.getTime(), chunk.contentEncoding, maxMessageBytes, chunk.version],
    )) as [StoreChunkOutcome, string | null];
    return { outcome, replacedVersion: replaced ?? undefined };
  }

  /**
   * The sender of a message, asked of a primary only: what decides whether a send whose writes
   * a failover may have lost stands. A primary just made a replica still answers reads from what
   * it had, which the new primary may never have had. Asked again while it fails (a replica's
   * refusal, a connection lost in the failover).
   */
  async senderOnPrimary(id: string): Promise<string | undefined> {
    const ask = async (): Promise<string | undefined> => ((await senderOnPrimaryScript.run(this.#redis, [this.#keys.message(id)], [])) as string | null) ?? undefined;
    return acrossFailover(ask, () => true);
  }

  async get(id: string): Promise<MessageRecord | undefined> {
    // Named fields only: not the chunk sizes, nor an inline payload.
    const values = await this.#redis.hmget(this.#keys.message(id), ...RECORD_FIELDS);
    if (values[0] === null) return undefined;
    return deserialise(id, Object.fromEntries(RECORD_FIELDS.map((field, i) => [field, values[i] ?? ''])));
  }

  /** The copy id (newChunkCopyId) of the upload whose copy of chunk `number` is recorded; undefined for chunk 1 as sent, or none recorded. */
  async recordedChunkCopy(id: string, number: number): Promise<string | undefined> {
    const version = await this.#redis.hget(this.#keys.message(id), `${CHUNK_VERSION_FIELD_PREFIX}${number}`);
    return version?.split('-')[1];
  }

  /** Chunks stored so far with their sizes in bytes (as stored), by ascending number. */
  async storedChunks(id: string): Promise<readonly StoredChunkSize[]> {
    const fields = await this.#redis.hgetall(this.#keys.message(id));
    return Object.entries(fields)
      .filter(([field]) => field.startsWith(CHUNK_FIELD_PREFIX))
      .map(([field, size]) => ({ number: Number(field.slice(CHUNK_FIELD_PREFIX.length)), size: Number(size) }))
      .sort((a, b) => a.number - b.number);
  }

  /** Marks the message acknowledged; 'acknowledged' (also when it was before): take it out of the inbox next. */
  async acknowledge(id: string, recipient: string, now: Date): Promise<AcknowledgeOutcome> {
    return (await acknowledgeScript.run(this.#redis, [this.#keys.message(id)], [recipient, now.getTime()])) as AcknowledgeOutcome;
  }

  /**
   * Takes a message out of its recipient's inbox (nothing when it is not there): the step after
   * acknowledge, expiry and purge, repeated when an interrupted one is retried.
   */
  async leaveInbox(id: string, recipient: string): Promise<void> {
    await leaveInboxScript.run(this.#redis, [this.#keys.inbox(recipient), this.#keys.inboxLeft(recipient)], [id, LEFT_INBOX_REMEMBERED_MS]);
  }

  /** Reachability check for readiness: every node holding messages. */
  async ping(): Promise<void> {
    await pingEveryMaster(this.#redis);
  }

  /** Whether a message has a record (in any state). */
  async isRecorded(id: string): Promise<boolean> {
    return (await this.#redis.exists(this.#keys.message(id))) === 1;
  }

  /**
   * The ids of every message record, a page at a time: SCAN on each master, so that millions are
   * read without holding them, or Redis, for long. An id may come twice (SCAN's guarantee).
   */
  async *recordedIdPages(): AsyncGenerator<string[]> {
    // The record's key around an id, its prefix escaped: a deployment's may hold a glob's characters.
    const [before, after] = this.#keys.message('\0').split('\0') as [string, string];
    const pattern = `${escapeGlob(before)}*${escapeGlob(after)}`;
    for (const node of masters(this.#redis)) {
      for await (const keys of scanPages((cursor) => node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_PAGE))) {
        yield keys.map((key) => key.slice(before.length, key.length - after.length));
      }
    }
  }

  /** Whether an id is reserved for a send whose first chunk may still be on its way. */
  async isReserved(id: string): Promise<boolean> {
    return (await this.#redis.exists(this.#keys.messageIdReservation(id))) === 1;
  }

  /**
   * Expires an accepted, unacknowledged message with this status detail, naming the id of the
   * non-delivery report to send; finishExpiry does the rest. False when the message was no longer accepted.
   */
  async expire(message: MessageRecord, reportId: string, detail: Omit<MessageStatusDetail, 'success'>, now: Date): Promise<boolean> {
    const args = [now.getTime(), reportId, detail.code, detail.event, detail.description];
    return (await expireScript.run(this.#redis, [this.#keys.message(message.id)], args)) === 'expired';
  }

  /**
   * Notes that a download found chunk n of a message missing from object storage, for its
   * lifecycle check to verify; nothing when the record is gone. Noting it again, or another
   * chunk meanwhile, is harmless: the check verifies whichever is noted.
   */
  async noteMissingChunk(id: string, chunkNumber: number): Promise<void> {
    await noteMissingChunkScript.run(this.#redis, [this.#keys.message(id)], [chunkNumber]);
  }

  /** Forgets chunk n noted missing, found in object storage after all (unless another is noted since). */
  async forgetMissingChunk(id: string, chunkNumber: number, note: string): Promise<void> {
    await forgetMissingChunkScript.run(this.#redis, [this.#keys.message(id)], [chunkNumber, note]);
  }

  /**
   * Takes an expired message out of its recipient's inbox and puts its non-delivery report into
   * the sender's inbox. Every step is repeatable, so an interrupted run is simply run again.
   */
  async finishExpiry(message: MessageRecord, now: Date): Promise<void> {
    await this.leaveInbox(message.id, message.recipient);
    if (message.reportId) {
      const report: MessageMetadata = {
        type: 'REPORT',
        sender: '',
        recipient: message.sender,
        workflowId: message.workflowId,
        subject: message.subject,
        localId: message.localId,
        partnerId: '',
        fileName: '',
        checksum: '',
        contentType: '',
        compressed: false,
        encrypted: false,
        contentEncoding: '',
        totalChunks: 0,
        linkedMessageId: message.id,
      };
      // The report tells the sender what tracking tells of the message: why it was not delivered.
      const undelivered: MessageStatusDetail = { ...message.statusDetail, success: false };
      const outcome = await this.#record(message.reportId, report, undelivered, now);
      // Recorded now, or by an interrupted run: then delivered again unless the sender has since acknowledged it.
      if (outcome === 'accepted' || (outcome === 'exists' && (await this.get(message.reportId))?.status === 'accepted')) {
        await this.deliverChecked(message.reportId, message.sender);
      }
    }
    await this.#redis.hdel(this.#keys.message(message.id), 'expiryPending');
  }

  /** Marks an upload that was never completed as failed, with this status detail. False when it was no longer uploading. */
  async abandon(id: string, detail: Omit<MessageStatusDetail, 'success'>, now: Date): Promise<boolean> {
    const args = [now.getTime(), detail.code, detail.event, detail.description];
    return (await abandonScript.run(this.#redis, [this.#keys.message(id)], args)) === 'abandoned';
  }

  async markPayloadPurged(id: string, now: Date): Promise<void> {
    await updateExisting.run(this.#redis, [this.#keys.message(id)], ['payloadPurgedAt', now.getTime()]);
  }

  /** Deletes the message's records; tracking no longer knows it. */
  async purge(message: MessageRecord): Promise<void> {
    const keys = this.#keys;
    // The indexes first: were this interrupted, the record is still there to purge again.
    await Promise.all([
      message.localId && message.sender ? this.#redis.srem(keys.localIds(message.sender, message.localId), message.id) : undefined,
      this.leaveInbox(message.id, message.recipient),
    ]);
    // Freed by Redis in the background: a record of 10,000 chunks (20,000 fields) took a DEL ~5 ms, every client waiting.
    await this.#redis.unlink(keys.message(message.id));
  }

  /** Bytes stored of chunk n, as sent (gzip-encoded where it was); undefined when not stored. */
  async chunkSize(id: string, chunkNumber: number): Promise<number | undefined> {
    const size = await this.#redis.hget(this.#keys.message(id), `${CHUNK_FIELD_PREFIX}${chunkNumber}`);
    return size === null ? undefined : Number(size);
  }

  /**
   * Where chunk n's bytes are: a small message's payload stored with its record, or else the
   * version of its object in storage ('' for chunk 1 as sent), and the size recorded when it
   * was stored (undefined for a message accepted whole at its send: the message's size).
   */
  async chunkSource(
    id: string,
    chunkNumber: number,
  ): Promise<{ readonly inlinePayload: Buffer | undefined; readonly version: string; readonly size: number | undefined }> {
    const [payload, version, size] = await this.#redis.hmgetBuffer(
      this.#keys.message(id),
      INLINE_PAYLOAD_FIELD,
      `${CHUNK_VERSION_FIELD_PREFIX}${chunkNumber}`,
      `${CHUNK_FIELD_PREFIX}${chunkNumber}`,
    );
    return {
      inlinePayload: chunkNumber === 1 ? (payload ?? undefined) : undefined,
      version: version?.toString() ?? '',
      size: size === null || size === undefined ? undefined : Number(size.toString()),
    };
  }

  async deleteInlinePayload(id: string): Promise<void> {
    await this.#redis.hdel(this.#keys.message(id), INLINE_PAYLOAD_FIELD);
  }

  /** Accepted messages in the inbox, oldest first, from after position `after`. */
  async inboxPage(mailboxId: string, limit: number, after: number | undefined): Promise<InboxPage> {
    const from = after === undefined ? '-inf' : `(${after}`;
    // One more than asked tells whether a next page exists without a second round trip.
    const entries = await this.#redis.zrangebyscore(
      this.#keys.inbox(mailboxId),
      from,
      '+inf',
      'WITHSCORES',
      'LIMIT',
      0,
      limit + 1,
    );
    const messageIds: string[] = [];
    const scores: string[] = [];
    for (let i = 0; i < entries.length; i += 2) {
      messageIds.push(entries[i]!);
      scores.push(entries[i + 1]!);
    }
    const hasMore = messageIds.length > limit;
    return {
      messageIds: messageIds.slice(0, limit),
      next: hasMore ? Number(scores[limit - 1]) : undefined,
    };
  }

  /** The workflow ids of several messages, in order (sent together: one write). */
  async workflowIds(ids: readonly string[]): Promise<readonly string[]> {
    // Not one pipeline object: on a cluster the messages live on different nodes.
    const values = await Promise.all(ids.map((id) => this.#redis.hget(this.#keys.message(id), 'workflowId')));
    return values.map((value) => value ?? '');
  }

  /** Where a message is in the inbox (to page after it); undefined when it is not there. */
  async inboxPosition(mailboxId: string, messageId: string): Promise<number | undefined> {
    const score = await this.#redis.zscore(this.#keys.inbox(mailboxId), messageId);
    return score === null ? undefined : Number(score);
  }

  async inboxCount(mailboxId: string): Promise<number> {
    return this.#redis.zcard(this.#keys.inbox(mailboxId));
  }

  /** How many messages wait in the inbox, and since when the first of them (its acceptance) has. */
  async waiting(mailboxId: string): Promise<InboxBacklog> {
    const inbox = this.#keys.inbox(mailboxId);
    const [count, [firstId]] = await Promise.all([this.#redis.zcard(inbox), this.#redis.zrange(inbox, '0', '0')]);
    if (firstId === undefined) return { count, oldest: undefined };
    const acceptedAt = await this.#redis.hget(this.#keys.message(firstId), 'acceptedAt');
    return { count, oldest: { messageId: firstId, since: acceptedAt ? new Date(Number(acceptedAt)) : undefined } };
  }

  /**
   * How many of the sender's messages carry this local id, and the ids of up to `listed` of
   * them (any, when there are more): a sender may give one local id to millions of messages.
   */
  async findByLocalId(sender: string, localId: string, listed: number): Promise<LocalIdMatches> {
    const key = this.#keys.localIds(sender, localId);
    const [count, ids] = await Promise.all([this.#redis.scard(key), this.#redis.srandmember(key, listed)]);
    return { count, ids };
  }
}

/** Besides these, a record holds its chunk sizes (`chunk:<n>`) and versions, the count of chunk uploads begun (`chunkUploads`), and a small message's payload. */
const RECORD_FIELDS = [
  'type', 'sender', 'recipient', 'workflowId', 'subject', 'localId', 'partnerId', 'fileName', 'checksum', 'contentType',
  'compressed', 'encrypted', 'contentEncoding', 'totalChunks', 'linkedMessageId', 'status', 'statusCode', 'statusEvent',
  'statusDescription', 'statusSuccess', 'size', 'createdAt', 'statusAt', 'acceptedAt', 'acknowledgedAt', 'payloadPurgedAt',
  'inline', 'reportId', 'expiryPending', 'missingChunk', 'missingChunkNote',
] as const;
const CHUNK_FIELD_PREFIX = 'chunk:';
/** Of a chunk uploaded (again) through its own URL: its object's version. */
const CHUNK_VERSION_FIELD_PREFIX = 'chunkVersion:';
const INLINE_PAYLOAD_FIELD = 'payload';

function serialiseMetadata(metadata: MessageMetadata): Record<string, string> {
  return {
    type: metadata.type,
    sender: metadata.sender,
    recipient: metadata.recipient,
    workflowId: metadata.workflowId,
    subject: metadata.subject,
    localId: metadata.localId,
    partnerId: metadata.partnerId,
    fileName: metadata.fileName,
    checksum: metadata.checksum,
    contentType: metadata.contentType,
    compressed: metadata.compressed ? '1' : '',
    encrypted: metadata.encrypted ? '1' : '',
    contentEncoding: metadata.contentEncoding,
    totalChunks: String(metadata.totalChunks),
    linkedMessageId: metadata.linkedMessageId,
  };
}

function optionalDate(value: string | undefined): Date | undefined {
  return value ? new Date(Number(value)) : undefined;
}

function deserialise(id: string, fields: Record<string, string>): MessageRecord {
  const text = (name: string): string => fields[name] ?? '';
  return {
    id,
    type: text('type') as MessageType,
    sender: text('sender'),
    recipient: text('recipient'),
    workflowId: text('workflowId'),
    subject: text('subject'),
    localId: text('localId'),
    partnerId: text('partnerId'),
    fileName: text('fileName'),
    checksum: text('checksum'),
    contentType: text('contentType'),
    compressed: text('compressed') === '1',
    encrypted: text('encrypted') === '1',
    contentEncoding: text('contentEncoding'),
    totalChunks: Number(text('totalChunks')),
    linkedMessageId: text('linkedMessageId'),
    status: text('status') as MessageStatus,
    statusDetail: fields.statusCode
      ? { code: text('statusCode'), event: text('statusEvent'), description: text('statusDescription'), success: text('statusSuccess') === '1' }
      : text('status') === 'uploading'
        ? UPLOADING_STATUS
        : ACCEPTED_STATUS,
    size: Number(text('size') || '0'),
    createdAt: new Date(Number(text('createdAt'))),
    statusAt: new Date(Number(text('statusAt'))),
    acceptedAt: optionalDate(fields.acceptedAt),
    acknowledgedAt: optionalDate(fields.acknowledgedAt),
    payloadPurgedAt: optionalDate(fields.payloadPurgedAt),
    inlinePayload: text('inline') === '1',
    reportId: text('reportId'),
    expiryPending: text('expiryPending') === '1',
    missingChunk: fields.missingChunk ? Number(fields.missingChunk) : undefined,
    missingChunkNote: text('missingChunkNote'),
  };
}
