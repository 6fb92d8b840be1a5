import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MeshClient } from '../client/mesh-client.ts';
import type { MessageMetadata } from '../client/message-metadata.ts';
import { formatChecksum } from './checksum.ts';
import { defaultFileName, type DownloadResult, downloadFile, fitFileName } from './download.ts';
import type { ProgressFactory } from './progress.ts';

/** A message saved into the folder and acknowledged. */
export interface ReceivedMessage {
  readonly messageId: string;
  /** `DATA` or `REPORT`. */
  readonly messageType: string;
  /** The payload's file; undefined for a report (a non-delivery report has no payload). */
  readonly path: string | undefined;
  /** `<ID>.json`: who sent it, workflow, subject, ... (for a report, its status and the message it is about). */
  readonly metadataPath: string;
  readonly bytes: number;
}

export interface ReceiveOptions {
  readonly folder: string;
  readonly progress: ProgressFactory;
  readonly onReceived: (message: ReceivedMessage) => void;
  /** A message that could not be saved (it stays in the inbox for the next pass), or a failed inbox listing. */
  readonly onFailed: (messageId: string | undefined, error: unknown) => void;
  /** Stops after the message being received. */
  readonly signal?: AbortSignal;
}

/**
 * Saves every message waiting in the inbox into the folder, then acknowledges it: the payload
 * as `<ID>_<sender's file name>` (or `<ID>.dat`), then `<ID>.json` with its metadata, each
 * written under a temporary name, flushed and renamed. A program watching the folder can take
 * a message once its `.json` appears. A message is acknowledged only once both are on disk;
 * should the acknowledgement be lost, the next pass saves the same files again under the same
 * names. Returns how many messages could not be received.
 */
export async function receiveInbox(client: MeshClient, options: ReceiveOptions): Promise<number> {
  let ids: string[];
  try {
    ids = await client.listInbox();
  } catch (error) {
    options.onFailed(undefined, error);
    return 1;
  }
  let failed = 0;
  for (const id of ids) {
    if (options.signal?.aborted) break;
    try {
      options.onReceived(await receiveMessage(client, id, options));
    } catch (error) {
      failed += 1;
      options.onFailed(id, error);
    }
  }
  return failed;
}

/** Receives what arrives, pass after pass `intervalMs` apart, until the signal stops it. */
export async function watchInbox(client: MeshClient, options: ReceiveOptions & { readonly intervalMs: number; readonly signal: AbortSignal }): Promise<void> {
  while (!options.signal.aborted) {
    await receiveInbox(client, options);
    await sleep(options.intervalMs, undefined, { signal: options.signal }).catch(() => undefined);
  }
}

async function receiveMessage(client: MeshClient, listedId: string, options: ReceiveOptions): Promise<ReceivedMessage> {
  const metadata = await client.head(listedId);
  const messageId = (metadata.messageId ?? listedId).toUpperCase();
  const messageType = metadata.messageType ?? 'DATA';
  const download =
    messageType === 'REPORT'
      ? undefined
      : await downloadFile(client, { messageId, output: payloadFileName(metadata, messageId), cwd: options.folder, progress: options.progress });
  const metadataPath = join(options.folder, `${messageId}.json`);
  await writeFileAtomically(metadataPath, `${JSON.stringify(describe(metadata, messageId, download), null, 2)}\n`);
  await client.acknowledge(messageId);
  return { messageId, messageType, path: download?.path, metadataPath, bytes: download?.bytes ?? 0 };
}

/** The id first, so that two senders' `results.csv` never meet. */
function payloadFileName(metadata: MessageMetadata, messageId: string): string {
  const name = defaultFileName(metadata.fileName, messageId);
  return name === `${messageId}.dat` ? name : fitFileName(`${messageId}_${name}`);
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
  // Hidden, as the download's own temporary file: a program watching the folder skips both.
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.part`);
  const handle = await open(temporary, 'wx');
  try {
    await handle.writeFile(text);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  await rename(temporary, path);
}
