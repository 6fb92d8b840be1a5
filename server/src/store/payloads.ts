import type { Readable } from 'node:stream';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { isObjectStorageThrottling, statusOf } from './throttling.ts';

export interface StoredChunk {
  /** Streamed from object storage; a small message's payload, read with its record, is at hand. */
  readonly body: Readable | Buffer;
  readonly size: number;
}

/** A chunk's object as storage answers it. */
export interface StoredObject {
  readonly body: Readable;
  /** What storage says it holds; undefined when it streams it without saying (some S3 gateways answer chunked). */
  readonly size: number | undefined;
}

/**
 * One upload of chunk n of a message. Each upload through the chunk's own URL (a retry, a
 * resume) writes an object of its own, named by a version new for the message (a sequence
 * counted up in its record, and a random part), and the message record says
 * which one is the chunk: an upload refused, cut off or overtaken by the message's acceptance
 * never touches the chunk already recorded. Chunk 1 as sent with the message has no version.
 */
export interface ChunkObject {
  readonly messageId: string;
  readonly number: number;
  readonly version: string;
}

/**
 * Message payloads in S3-compatible storage: one object per chunk upload,
 * `messages/{id}/{n}` or `messages/{id}/{n}.{version}`.
 * Bodies stream through; nothing here holds a whole chunk in memory.
 */
export class PayloadStore {
  readonly #s3: S3Client;
  readonly #bucket: string;

  constructor(s3: S3Client, bucket: string) {
    this.#s3 = s3;
    this.#bucket = bucket;
  }

  /**
   * Creates the bucket unless it exists (idempotent start-up step). Processes of a new
   * deployment start together: all find no bucket, one creates it, and the others are refused
   * as it exists (BucketAlreadyExists, or BucketAlreadyOwnedByYou): theirs is there all the same.
   */
  async ensureBucket(): Promise<void> {
    try {
      await this.#head();
    } catch {
      try {
        await this.#s3.send(new CreateBucketCommand({ Bucket: this.#bucket }));
      } catch (error) {
        if (!(error instanceof Error && /^BucketAlready(Exists|OwnedByYou)$/.test(error.name))) throw error;
        await this.#head().catch(() => Promise.reject(error));
      }
    }
  }

  async #head(): Promise<void> {
    await this.#s3.send(new HeadBucketCommand({ Bucket: this.#bucket }));
  }

  /**
   * Streams one chunk into storage; resolves once it is durable. Without a known length
   * (gzip uploads arrive chunked) it goes up as a multipart upload. `abort` ends it when the
   * body fails: the SDK does not notice a failing body stream, and would hold the request
   * (and its socket) open waiting for the rest.
   */
  async putChunk(chunk: ChunkObject, body: Readable, contentLength: number | undefined, abort: AbortController): Promise<void> {
    const Key = chunkKey(chunk);
    if (contentLength !== undefined) {
      await this.#s3.send(new PutObjectCommand({ Bucket: this.#bucket, Key, Body: body, ContentLength: contentLength }), { abortSignal: abort.signal });
    } else {
      await new Upload({ client: this.#s3, params: { Bucket: this.#bucket, Key, Body: body }, abortController: abort }).done();
    }
  }

  async deleteChunk(chunk: ChunkObject): Promise<void> {
    await this.#s3.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: chunkKey(chunk) }));
  }

  /** `abortSignal`: the reader is gone (a client that left), and so is the need. */
  async getChunk(chunk: ChunkObject, abortSignal?: AbortSignal): Promise<StoredObject | undefined> {
    try {
      const result = await this.#s3.send(new GetObjectCommand({ Bucket: this.#bucket, Key: chunkKey(chunk) }), abortSignal ? { abortSignal } : {});
      return { body: result.Body as Readable, size: result.ContentLength };
    } catch (error) {
      if (error instanceof Error && error.name === 'NoSuchKey') return undefined;
      throw error;
    }
  }

  /**
   * Whether a chunk's object is in the bucket, asked with a HEAD: only a clean 404 says it is
   * not; any other failure is thrown, as nothing can be told from it.
   */
  async hasChunk(chunk: ChunkObject): Promise<boolean> {
    try {
      await this.#s3.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: chunkKey(chunk) }));
      return true;
    } catch (error) {
      if (statusOf(error) === 404) return false;
      throw error;
    }
  }

  /** Deletes every stored chunk of a message (finished, expired or abandoned). */
  async deleteMessage(messageId: string): Promise<void> {
    await this.deletePrefix(messagePrefix(messageId));
  }

  /**
   * The ids of the messages with objects in the bucket, a listing's page (up to 1,000) at a
   * time: each id once however many objects it has, as the folder its objects are listed under.
   */
  async *messageIdPages(): AsyncGenerator<string[]> {
    let ContinuationToken: string | undefined;
    do {
      const page = await this.#s3.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: MESSAGES_FOLDER, Delimiter: '/', ContinuationToken }));
      yield (page.CommonPrefixes ?? []).flatMap(({ Prefix: folder }) => (folder ? [folder.slice(MESSAGES_FOLDER.length, -1)] : []));
      ContinuationToken = page.NextContinuationToken;
    } while (ContinuationToken);
  }

  /** Deletes every object under a key prefix, a page at a time. */
  async deletePrefix(prefix: string): Promise<void> {
    let ContinuationToken: string | undefined;
    do {
      const page = await this.#s3.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: prefix, ContinuationToken }));
      const objects = (page.Contents ?? []).flatMap((object) => (object.Key ? [{ Key: object.Key }] : []));
      if (objects.length > 0) {
        const { Errors: failed = [] } = await this.#s3.send(new DeleteObjectsCommand({ Bucket: this.#bucket, Delete: { Objects: objects } }));
        // S3 answers 200 with the keys it could not delete listed: the purge has not happened, and its check must be tried again.
        if (failed.length > 0) {
          const [first] = failed;
          throw new Error(`object storage did not delete ${failed.length} of ${objects.length} objects under ${prefix} (${first?.Key}: ${first?.Code} ${first?.Message ?? ''})`.trim());
        }
      }
      ContinuationToken = page.NextContinuationToken;
    } while (ContinuationToken);
  }

  /**
   * Cheap check for readiness of what object storage answers for the bucket, given up on (and
   * its request ended) after `withinMs`: left running against a silent store, each probe would
   * hold one of the pooled sockets until the client's own timeout, minutes on. A throttled
   * answer decides it at once: the SDK would retry it, with backoff that can outlast `withinMs`
   * (a 429's, of 500 ms upwards, took 2.6 s in a test), and the check would be given up as though nothing answered,
   * while each retry asked more of a store asking for less.
   */
  async ping(withinMs: number): Promise<ObjectStorageState> {
    const command = new HeadBucketCommand({ Bucket: this.#bucket });
    command.middlewareStack.add(
      (next) => async (args) => {
        try {
          return await next(args);
        } catch (error) {
          // An error of no S3 shape (no status, no code) is one the SDK does not retry.
          throw isObjectStorageThrottling(error) ? new ThrottledAnswer() : error;
        }
      },
      EACH_ATTEMPT,
    );
    try {
      await this.#s3.send(command, { abortSignal: AbortSignal.timeout(withinMs) });
      return 'ok';
    } catch (error) {
      if (error instanceof ThrottledAnswer) return 'throttled';
      return statusOf(error) === undefined ? 'unreachable' : 'error';
    }
  }
}

/**
 * What object storage answered a readiness check: the bucket (ok); throttling, so there and
 * serving, more slowly; an error that is no throttling (the bucket gone, credentials refused, a
 * failure of its own); or nothing (a connection refused, cut off or silent).
 */
export type ObjectStorageState = 'ok' | 'throttled' | 'error' | 'unreachable';

/** Ends a readiness check at the first throttled answer. */
class ThrottledAnswer extends Error {}

/**
 * Where a command's own middleware sees each attempt's answer, read and parsed: inside the SDK's
 * retries, which are first in the same step (its retryMiddleware, of high priority).
 */
const EACH_ATTEMPT = { name: 'meshboxEachAttempt', step: 'finalizeRequest', priority: 'low' } as const;

/** Where every message's objects are, each message's under a folder of its own. */
const MESSAGES_FOLDER = 'messages/';

function messagePrefix(messageId: string): string {
  return `${MESSAGES_FOLDER}${messageId}/`;
}

function chunkKey({ messageId, number, version }: ChunkObject): string {
  return `${messagePrefix(messageId)}${number}${version ? `.${version}` : ''}`;
}
