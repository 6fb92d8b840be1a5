import { open, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MeshClientError } from '../client/errors.ts';
import type { MeshClient } from '../client/mesh-client.ts';
import type { MessageMetadata } from '../client/message-metadata.ts';
import { formatChecksum } from './checksum.ts';
import { defaultFileName, type DownloadResult, downloadFile, fitFileName, safeFileName, temporaryPathBeside } from './download.ts';
import type { ProgressFactory } from './progress.ts';

/** A message saved into the folder and acknowledged. */
export interface ReceivedMessage {
  readonly messageId: string;
  /** `DATA` or `REPORT`. */
  readonly messageType: string;
  /** The payload's file; null for a report (a non-delivery report has no payload). */
  readonly path: string | null;
  /** `<ID>.json`: who sent it, workflow, subject, ... (for a report, its status and the message it is about). */
  readonly metadataPath: string;
  readonly bytes: number;
}

export interface ReceiveOptions {
  readonly folder: string;
  readonly progress: ProgressFactory;
  readonly onReceived: (message: ReceivedMessage) => void;
  /** A message that could not be saved: it stays in the inbox for the next pass. */
  readonly onFailed: (messageId: string, error: unknown) => void;
  /** A listed message that was gone when fetched (acknowledged or expired meanwhile): nothing to do. */
  readonly onGone: (messageId: string) => void;
  /** Stops the pass; give the client the same signal to end the message in hand too. */
  readonly signal?: AbortSignal;
  /** Leaves out messages for now (those that failed recently, when watching). */
  readonly skip?: (messageId: string) => boolean;
  /** Every id the inbox listed for this pass. */
  readonly onListed?: (messageIds: readonly string[]) => void;
}

/** A MESH message id, as it may appear in a file name. */
const MESSAGE_ID = /^[A-Za-z0-9_-]{1,100}$/;

/**
 * Saves every message waiting in the inbox into the folder, then acknowledges it: the payload
 * as `<ID>_<sender's file name>` (or `<ID>.dat`), then `<ID>.json` with its metadata, each
 * written under a hidden temporary name, flushed and renamed, and the folder flushed. A program
 * watching the folder can take a message once its `.json` appears. A message is acknowledged
 * only once both are on disk; should the acknowledgement be lost, the next pass saves the same
 * files again under the same names. Returns how many could not be received; a failed listing
 * throws.
 */
export async function receiveInbox(client: MeshClient, options: ReceiveOptions): Promise<number> {
  let failed = 0;
  const listed = await client.listInbox();
  options.onListed?.(listed);
  for (const id of listed) {
    if (options.signal?.aborted) break;
    if (options.skip?.(id)) continue;
    let received: ReceivedMessage | undefined;
    try {
      received = await receiveMessage(client, id, options);
    } catch (error) {
      // Stopped part-way: not acknowledged, so it stays in the inbox for the next run.
      if (options.signal?.aborted) break;
      if (isGone(error)) options.onGone(id);
      else {
        failed += 1;
        options.onFailed(id, error);
      }
    }
    if (received) options.onReceived(received);
  }
  return failed;
}

export interface WatchOptions extends Omit<ReceiveOptions, 'skip' | 'onListed'> {
  readonly intervalMs: number;
  readonly signal: AbortSignal;
  /** The inbox could not be listed (the server away): tried again at the next poll. */
  readonly onListingFailed: (error: unknown) => void;
}

/** A message failing again and again (a checksum mismatch) is tried at most this seldom. */
const MAX_RETRY_WAIT_MS = 60 * 60 * 1000;

/**
 * Receives what arrives, pass after pass `intervalMs` apart, until the signal stops it (a
 * message it stops part-way is not acknowledged: the next run saves it again). A
 * message that fails is tried again after one interval, then after two, four, ... (at most an
 * hour): one that cannot be saved is not downloaded in full at every poll.
 */
export async function watchInbox(client: MeshClient, options: WatchOptions): Promise<void> {
  const failing = new Map<string, { readonly failures: number; readonly notBefore: number }>();
  const pass: ReceiveOptions = {
    ...options,
    skip: (id) => (failing.get(id)?.notBefore ?? 0) > Date.now(),
    // A failing message no longer listed was acknowledged elsewhere or expired: forget it.
    onListed: (ids) => {
      const listed = new Set(ids);
      for (const id of failing.keys()) if (!listed.has(id)) failing.delete(id);
    },
    onReceived: (message) => {
      failing.delete(message.messageId);
      options.onReceived(message);
    },
    onGone: (id) => {
      failing.delete(id);
      options.onGone(id);
    },
    onFailed: (id, error) => {
      const failures = (failing.get(id)?.failures ?? 0) + 1;
      failing.set(id, { failures, notBefore: Date.now() + Math.min(options.intervalMs * 2 ** (failures - 1), MAX_RETRY_WAIT_MS) });
      options.onFailed(id, error);
    },
  };
  while (!options.signal.aborted) {
    try {
      await receiveInbox(client, pass);
    } catch (error) {
      options.onListingFailed(error);
    }
    await sleep(options.intervalMs, undefined, { signal: options.signal }).catch(() => undefined);
  }
}

function isGone(error: unknown): boolean {
  return error instanceof MeshClientError && (error.status === 404 || error.status === 410);
}

async function receiveMessage(client: MeshClient, messageId: string, options: ReceiveOptions): Promise<ReceivedMessage> {
  // The id names files: only what a MESH id can hold, and the id listed is the one fetched and acknowledged.
  if (!MESSAGE_ID.test(messageId)) throw new Error(`the server listed a message id that cannot name a file: ${JSON.stringify(messageId)}`);
  const metadata = await client.head(messageId);
  if (metadata.messageId !== undefined && metadata.messageId.toUpperCase() !== messageId.toUpperCase()) {
    throw new Error(`asked for message ${messageId}, the server described ${metadata.messageId}`);
  }
  const messageType = metadata.messageType ?? 'DATA';
  const download =
    messageType === 'REPORT'
      ? undefined
      : await downloadFile(client, { messageId, output: payloadFileName(metadata, messageId), cwd: options.folder, progress: options.progress });
  const metadataPath = join(options.folder, `${messageId}.json`);
  await writeFileAtomically(metadataPath, `${JSON.stringify(describe(metadata, messageId, download), null, 2)}\n`);
  await syncFolder(options.folder);
  await client.acknowledge(messageId);
  return { messageId, messageType, path: download?.path ?? null, metadataPath, bytes: download?.bytes ?? 0 };
}

/** The id first, so that two senders' `results.csv` never meet. */
function payloadFileName(metadata: MessageMetadata, messageId: string): string {
  const safe = safeFileName(metadata.fileName);
  return safe === undefined ? defaultFileName(undefined, messageId) : fitFileName(`${messageId}_${safe}`);
}

function describe(metadata: MessageMetadata, messageId: string, download: DownloadResult | undefined): Record<string, unknown> {
  const mexHeaders = Object.fromEntries(Object.entries(metadata.headers).filter(([name]) => name.startsWith('mex-')));
  return {
    messageId,
    messageType: metadata.messageType ?? 'DATA',
    from: metadata.from ?? null,
    to: metadata.to ?? null,
    workflowId: metadata.workflowId ?? null,
    localId: metadata.localId ?? null,
    subject: metadata.subject ?? null,
    fileName: metadata.fileName ?? null,
    payloadFile: download ? basename(download.path) : null,
    bytes: download?.bytes ?? 0,
    chunks: download?.totalChunks ?? 0,
    verifiedChecksum: download?.checksum ? formatChecksum(download.checksum) : null,
    receivedAt: new Date().toISOString(),
    mexHeaders,
  };
}

async function writeFileAtomically(path: string, text: string): Promise<void> {
  const temporary = temporaryPathBeside(path);
  const handle = await open(temporary, 'wx');
  try {
    await handle.writeFile(text);
    await handle.sync();
    await handle.close();
    await rename(temporary, path);
  } catch (error) {
    await handle.close().catch(() => undefined);
    await rm(temporary, { force: true });
    throw error;
  }
}

/**
 * Renames are durable only once their folder is flushed: after a power cut the files must be
 * there, as the server no longer holds a message once acknowledged. (Windows cannot open a
 * folder to flush it; NTFS journals the rename itself.)
 */
async function syncFolder(folder: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await open(folder, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
