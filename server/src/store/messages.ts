import type { Redis } from 'ioredis';
import type { MessageStatus, MessageType } from '../../../shared/src/protocol/index.ts';
import type { RedisKeys } from './keys.ts';
import { LuaScript } from './lua-script.ts';

const createMessageScript = new LuaScript('create-message', ['accept-when-complete']);
const storeChunkScript = new LuaScript('store-chunk', ['accept-when-complete']);
const acknowledgeScript = new LuaScript('acknowledge');
const expireScript = new LuaScript('expire-message', ['accept-when-complete']);
const abandonScript = new LuaScript('abandon-upload');
const purgeScript = new LuaScript('purge-message');
const updateExisting = new LuaScript('update-existing-hash');

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
}

export interface StoredChunkSize {
  readonly number: number;
  readonly size: number;
}

export type CreateOutcome = 'exists' | 'uploading' | 'accepted';
export type StoreChunkOutcome =
  | 'not_found'
  | 'forbidden'
  | 'locked'
  | 'range'
  | 'encoding'
  | 'too_large'
  | 'uploading'
  | 'accepted';
export type AcknowledgeOutcome = 'not_found' | 'gone' | 'acknowledged';

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

/** Message state in Redis. Every transition is one Lua script, so it is atomic. */
export class MessageStore {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;

  constructor(redis: Redis, keys: RedisKeys) {
    this.#redis = redis;
    this.#keys = keys;
  }

  /** Claims a fresh message id before its payload is stored; false when it is taken. */
  async reserveId(id: string): Promise<boolean> {
    // Held a day: longer than any single chunk upload can take.
    return (await this.#redis.set(this.#keys.messageIdReservation(id), '1', 'EX', 86_400, 'NX')) === 'OK';
  }

  /**
   * Records a message whose chunk 1 is stored; accepts it when that was its only chunk. A small
   * single-chunk message passes its payload here instead, to be stored with it atomically.
   */
  async create(
    id: string,
    metadata: MessageMetadata,
    firstChunkSize: number,
    now: Date,
    inlinePayload?: Buffer,
  ): Promise<CreateOutcome> {
    const keys = this.#keys;
    const fields: Record<string, string> = {
      id,
      ...serialiseMetadata(metadata),
      status: 'uploading',
      statusCode: ACCEPTED_STATUS.code,
      statusEvent: ACCEPTED_STATUS.event,
      statusDescription: ACCEPTED_STATUS.description,
      statusSuccess: '1',
      createdAt: String(now.getTime()),
      statusAt: String(now.getTime()),
      inline: inlinePayload ? '1' : '0',
    };
    return (await createMessageScript.run(
      this.#redis,
      [
        keys.message(id),
        keys.messageChunks(id),
        keys.inbox(metadata.recipient),
        keys.inboxSequence,
        keys.outbox(metadata.sender),
        keys.localIds(metadata.sender, metadata.localId),
        keys.inlinePayload(id),
        keys.messageIdReservation(id),
      ],
      [
        id,
        firstChunkSize,
        now.getTime(),
        metadata.localId,
        inlinePayload ? '1' : '',
        inlinePayload ?? '',
        // Empty fields read back as '' anyway; not storing them keeps each record small.
        ...Object.entries(fields).filter(([, value]) => value !== '').flat(),
      ],
    )) as CreateOutcome;
  }

  /** Records chunk n ≥ 2 (already in object storage) for the sender's uploading message. */
  async storeChunk(
    message: Pick<MessageRecord, 'id' | 'recipient'>,
    sender: string,
    chunk: { readonly number: number; readonly size: number; readonly contentEncoding: string },
    now: Date,
    maxMessageBytes: number,
  ): Promise<StoreChunkOutcome> {
    const keys = this.#keys;
    return (await storeChunkScript.run(
      this.#redis,
      [keys.message(message.id), keys.messageChunks(message.id), keys.inbox(message.recipient), keys.inboxSequence],
      [message.id, sender, chunk.number, chunk.size, now.getTime(), chunk.contentEncoding, maxMessageBytes],
    )) as StoreChunkOutcome;
  }

  async get(id: string): Promise<MessageRecord | undefined> {
    const fields = await this.#redis.hgetall(this.#keys.message(id));
    return fields.id ? deserialise(fields) : undefined;
  }

  /** Chunks stored so far with their sizes in bytes (as stored), by ascending number. */
  async storedChunks(id: string): Promise<readonly StoredChunkSize[]> {
    const sizes = await this.#redis.hgetall(this.#keys.messageChunks(id));
    return Object.entries(sizes)
      .map(([number, size]) => ({ number: Number(number), size: Number(size) }))
      .sort((a, b) => a.number - b.number);
  }

  async acknowledge(id: string, recipient: string, now: Date): Promise<AcknowledgeOutcome> {
    return (await acknowledgeScript.run(
      this.#redis,
      [this.#keys.message(id), this.#keys.inbox(recipient)],
      [id, recipient, now.getTime()],
    )) as AcknowledgeOutcome;
  }

  /** Reachability check for readiness. */
  async ping(): Promise<void> {
    await this.#redis.ping();
  }

  /** Whether an id is reserved for a send whose first chunk may still be on its way. */
  async isReserved(id: string): Promise<boolean> {
    return (await this.#redis.exists(this.#keys.messageIdReservation(id))) === 1;
  }

  /**
   * Expires an accepted, unacknowledged message and puts a non-delivery report with the
   * given id into the sender's inbox. False when the message was no longer accepted.
   */
  async expire(message: MessageRecord, reportId: string, description: string, now: Date): Promise<boolean> {
    const keys = this.#keys;
    const outcome = await expireScript.run(
      this.#redis,
      [
        keys.message(message.id),
        keys.inbox(message.recipient),
        keys.message(reportId),
        keys.messageChunks(reportId),
        keys.inbox(message.sender),
        keys.inboxSequence,
      ],
      [message.id, now.getTime(), reportId, description],
    );
    return outcome === 'expired';
  }

  /** Marks an upload that was never completed as failed. False when it was no longer uploading. */
  async abandon(id: string, description: string, now: Date): Promise<boolean> {
    return (await abandonScript.run(this.#redis, [this.#keys.message(id)], [now.getTime(), description])) === 'abandoned';
  }

  async markPayloadPurged(id: string, now: Date): Promise<void> {
    await updateExisting.run(this.#redis, [this.#keys.message(id)], ['payloadPurgedAt', now.getTime()]);
  }

  /** Deletes the message's records; tracking no longer knows it. */
  async purge(message: MessageRecord): Promise<void> {
    const keys = this.#keys;
    await purgeScript.run(
      this.#redis,
      [
        keys.message(message.id),
        keys.messageChunks(message.id),
        keys.outbox(message.sender),
        keys.localIds(message.sender, message.localId),
        keys.inbox(message.recipient),
        keys.inlinePayload(message.id),
      ],
      [message.id],
    );
  }

  /** The payload of a small message stored with its record; undefined when there is none. */
  async inlinePayload(id: string): Promise<Buffer | undefined> {
    return (await this.#redis.getBuffer(this.#keys.inlinePayload(id))) ?? undefined;
  }

  async deleteInlinePayload(id: string): Promise<void> {
    await this.#redis.del(this.#keys.inlinePayload(id));
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

  /** The workflow ids of several messages, in order, in one round trip. */
  async workflowIds(ids: readonly string[]): Promise<readonly string[]> {
    const pipeline = this.#redis.pipeline();
    for (const id of ids) pipeline.hget(this.#keys.message(id), 'workflowId');
    const results = (await pipeline.exec()) ?? [];
    return results.map(([, value]) => (typeof value === 'string' ? value : ''));
  }

  async inboxCount(mailboxId: string): Promise<number> {
    return this.#redis.zcard(this.#keys.inbox(mailboxId));
  }

  /** Ids of the sender's messages carrying this local id. */
  async findByLocalId(sender: string, localId: string): Promise<readonly string[]> {
    return this.#redis.smembers(this.#keys.localIds(sender, localId));
  }
}

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
    compressed: metadata.compressed ? '1' : '0',
    encrypted: metadata.encrypted ? '1' : '0',
    contentEncoding: metadata.contentEncoding,
    totalChunks: String(metadata.totalChunks),
    linkedMessageId: metadata.linkedMessageId,
  };
}

function optionalDate(value: string | undefined): Date | undefined {
  return value ? new Date(Number(value)) : undefined;
}

function deserialise(fields: Record<string, string>): MessageRecord {
  const text = (name: string): string => fields[name] ?? '';
  return {
    id: text('id'),
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
    statusDetail: {
      code: text('statusCode'),
      event: text('statusEvent'),
      description: text('statusDescription'),
      success: text('statusSuccess') === '1',
    },
    size: Number(text('size') || '0'),
    createdAt: new Date(Number(text('createdAt'))),
    statusAt: new Date(Number(text('statusAt'))),
    acceptedAt: optionalDate(fields.acceptedAt),
    acknowledgedAt: optionalDate(fields.acknowledgedAt),
    payloadPurgedAt: optionalDate(fields.payloadPurgedAt),
    inlinePayload: text('inline') === '1',
  };
}
