import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isGone, refusedForNow } from '../client/errors.ts';
import type { MeshClient } from '../client/mesh-client.ts';
import { type MessageMetadata, namedByServer } from '../client/message-metadata.ts';
import { SAFE_MESSAGE_ID } from '../client/untrusted-text.ts';
import { defaultFileName, downloadFile, type DownloadResult, fitFileName, safeFileName, TargetExistsError } from './download.ts';
import { isTemporaryOf, removeLeftoverTemporaries, syncFolder, temporaryNames, writeFileAtomically } from './durable-files.ts';
import { type FolderWork, lockFolder } from './folder-lock.ts';
import { FolderChangedError, type SameFolderCheck } from './folder-identity.ts';
import { isReport, messageDescriptionText } from './message-description.ts';
import { continuableNames, discardPartialsOf, partialDownloadsIn } from './partial-download.ts';
import { PassEnd } from './pass-end.ts';
import { type PollingOptions, pollUntilStopped, RetrySchedule } from './polling.ts';
import type { ProgressFactory } from './progress.ts';
import { ReceiveClaims } from './receive-claims.ts';
import { claimNames, UnrelatedFileError } from './receive-names.ts';

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
  /** Run before each pass and around each message: throws FolderChangedError when the folder is no longer the one the run began with (see sameFolderCheck). */
  readonly sameFolder?: SameFolderCheck;
  readonly progress: ProgressFactory;
  /** Bytes each download leaves free on the folder's disk (see DownloadOptions). */
  readonly minFreeBytes?: number | undefined;
  readonly onReceived: (message: ReceivedMessage) => void;
  /** A message that could not be saved, or saved but not acknowledged (NotAcknowledgedError): it stays in the inbox for the next pass. */
  readonly onFailed: (messageId: string, error: unknown) => void;
  /** A listed message that was gone when fetched (acknowledged or expired meanwhile): nothing to do. */
  readonly onGone: (messageId: string) => void;
  /**
   * The stop came while this message was in hand: it stays in the inbox, and the pass ends.
   * `error` is how it ended: a DownloadIncompleteError says which whole chunks are kept.
   */
  readonly onStopped?: (messageId: string, error: unknown) => void;
  /** Stops the pass; give the client the same signal to end the message in hand too. */
  readonly signal?: AbortSignal;
  /** Leaves out messages for now (those that failed recently, when watching). */
  readonly skip?: (messageId: string) => boolean;
  /** Only messages whose workflow passes this MESH workflow_filter (`X`, `X*`, `*X*`, each also with `!`). */
  readonly workflowFilter?: string;
  /** Every id the inbox listed for this pass. */
  readonly onListed?: (messageIds: readonly string[]) => void;
  /**
   * Nothing of an earlier run or of a failed message can be in the folder (a watcher after its
   * first pass, nothing failing since): it is not read, as reading a folder that keeps what it
   * received costs more with every message (~0.5 µs of CPU a file, a year's 1.5 million files
   * nearly a second a pass).
   */
  readonly folderKnownClean?: boolean;
  /** How many messages not listed have chunks kept in the folder that the server still holds (acknowledged by another receiver): gone later, they are to be removed. */
  readonly onKeptUnlisted?: (messages: number) => void;
}

/**
 * A message saved into the folder whose acknowledgement failed: the server delivers it again, and
 * the next pass saves it again. Unless the server no longer holds it for this mailbox (404, 410;
 * a second acknowledgement is answered 200): it expired between its download and its
 * acknowledgement, and its sender was told it was not delivered. It comes no more, and its sender
 * must hear otherwise.
 */
export class NotAcknowledgedError extends Error {
  constructor(messageId: string, saved: string, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(
      `message ${messageId} was saved (${saved}) but not acknowledged: ${reason}; ` +
        (isGone(cause)
          ? 'the server no longer holds it to acknowledge, so it will not come again: it expired first, and its sender is told it was not delivered (tell them it was received)'
          : 'so it is delivered again, and saved again under the same names, next time'),
      { cause },
    );
    this.name = 'NotAcknowledgedError';
  }
}

/** Two receivers on one folder would both save, and hand on, the same messages. */
const RECEIVING: FolderWork = { lockFile: '.meshbox-receive.lock', worker: 'receiver' };

/**
 * Saves every message waiting in the inbox into the folder, then acknowledges it: the payload
 * as `<ID>_<sender's file name>` (or `<ID>.dat`), then `<ID>.json` with its metadata, each
 * written under a hidden temporary name, flushed and renamed, and the folder flushed. A program
 * watching the folder can take a message once its `.json` appears. A message is acknowledged
 * only once both are on disk; should the acknowledgement be lost, the next pass saves the same
 * files again under the same names. Before anything of a message is fetched its names are claimed
 * (claimNames): a file at one of them that an earlier run of that message did not write is never
 * replaced, nor one another message claimed; the message fails and stays in the inbox.
 * Returns how many could not be received; a failed listing, or another receiver working on the
 * folder, throws.
 */
export async function receiveInbox(client: MeshClient, options: ReceiveOptions): Promise<number> {
  await options.sameFolder?.();
  const unlock = await lockFolder(options.folder, RECEIVING);
  try {
    const claims = await ReceiveClaims.read(options.folder);
    // Read once a pass (a folder that keeps what it received grows for good): what a run cut
    // short left is there from the start.
    // Unless another receiver on the folder was killed at work: what it left is there now.
    return await receiveListed(client, options, options.folderKnownClean && !unlock.tookOver ? [] : await readdir(options.folder), claims);
  } finally {
    await unlock();
  }
}

async function receiveListed(client: MeshClient, options: ReceiveOptions, names: readonly string[], claims: ReceiveClaims): Promise<number> {
  let failed = 0;
  const listed = await client.listInbox(options.workflowFilter === undefined ? {} : { workflowFilter: options.workflowFilter });
  options.onListed?.(listed);
  options.onKeptUnlisted?.(await discardGonePartials(client, claims, listed, names));
  const leftovers = temporaryNames(names);
  const passEnd = new PassEnd();
  for (const id of listed) {
    if (options.signal?.aborted) break;
    if (options.skip?.(id)) continue;
    let received: ReceivedMessage | undefined;
    try {
      received = await receiveMessage(client, id, options, leftovers, claims);
      passEnd.served();
    } catch (error) {
      // Not acknowledged; and no other message goes into what is now there. Nor is one fetched
      // from a server out of reach, or refusing every message (one saved whose acknowledgement
      // found it so is said as saved).
      if (error instanceof FolderChangedError || (!(error instanceof NotAcknowledgedError) && passEnd.endsAt(error))) throw error;
      // Stopped part-way: not acknowledged, so it stays in the inbox for the next run.
      if (options.signal?.aborted) {
        options.onStopped?.(id, error);
        break;
      }
      if (isGone(error)) {
        await forgetGone(claims, id);
        options.onGone(id);
      } else {
        failed += 1;
        options.onFailed(id, error);
      }
    }
    if (received) options.onReceived(received);
  }
  return failed;
}

/**
 * Chunks kept of a message no longer listed (acknowledged by another client, expired) would stay
 * hidden in the folder for good: removed, with its claim, once the server says the message is
 * gone. One only left out of the listing (a workflow filter, beyond the page) is still there,
 * and stays.
 */
async function discardGonePartials(client: MeshClient, claims: ReceiveClaims, listed: readonly string[], names: readonly string[]): Promise<number> {
  const listedIds = new Set(listed.map((id) => id.toUpperCase()));
  let kept = 0;
  for (const id of await partialDownloadsIn(claims.folder, names)) {
    if (listedIds.has(id.toUpperCase()) || !SAFE_MESSAGE_ID.test(id)) continue;
    const gone = await client.head(id).then(
      () => false,
      (error: unknown) => isGone(error),
    );
    if (gone) await forgetGone(claims, id);
    else kept += 1;
  }
  return kept;
}

/** A message gone comes no more: what was kept of it, and its claim, go (best effort: they are hidden, and harmless). */
async function forgetGone(claims: ReceiveClaims, messageId: string): Promise<void> {
  await discardPartialsOf(claims.folder, messageId).catch(() => undefined);
  await claims.release(messageId).catch(() => undefined);
}

export interface WatchOptions extends Omit<ReceiveOptions, 'skip' | 'onListed' | 'signal'>, PollingOptions {}

/**
 * Receives what arrives, pass after pass `intervalMs` apart, until the signal stops it (a
 * message it stops part-way is not acknowledged: the next run saves it again). A message that
 * fails waits out a growing backoff (RetrySchedule) before it is tried again.
 */
export async function watchInbox(client: MeshClient, options: WatchOptions): Promise<void> {
  const retries = new RetrySchedule(options.intervalMs);
  const pass: ReceiveOptions = {
    ...options,
    skip: (id) => retries.waiting(id),
    // A failing message no longer listed was acknowledged elsewhere or expired.
    onListed: (ids) => retries.keepOnly(ids),
    onReceived: (message) => {
      retries.forget(message.messageId);
      options.onReceived(message);
    },
    onGone: (id) => {
      retries.forget(id);
      options.onGone(id);
    },
    onFailed: (id, error) => {
      retries.failed(id);
      if (refusedForNow(error)) options.onItemRefused?.();
      options.onFailed(id, error);
    },
  };
  // What a run cut short left is found on the first pass; after it, only a failed message (whose
  // chunks may be kept, and gone once it is), or one whose kept chunks another receiver made
  // needless by acknowledging it (removed once the server says it is gone), leaves anything in
  // the folder (or another receiver killed there, whose lock a pass takes over: receiveInbox).
  // A pass that failed as a whole (the server gone mid-message) may have kept chunks too: the next reads the folder.
  let lastPassDone = false;
  let keptUnlisted = 0;
  await pollUntilStopped(async () => {
    const knownClean = lastPassDone && !retries.anyFailing && keptUnlisted === 0;
    lastPassDone = false;
    const failed = await receiveInbox(client, { ...pass, folderKnownClean: knownClean, onKeptUnlisted: (messages) => (keptUnlisted = messages) });
    lastPassDone = true;
    return failed;
  }, options);
}

async function receiveMessage(
  client: MeshClient,
  messageId: string,
  options: ReceiveOptions,
  leftovers: readonly string[],
  claims: ReceiveClaims,
): Promise<ReceivedMessage> {
  // The id names files: only what a MESH id can hold, and the id listed is the one fetched and acknowledged.
  if (!SAFE_MESSAGE_ID.test(messageId)) throw new Error(`the server listed a message id that cannot name a file: ${JSON.stringify(messageId)}`);
  // A share may go from under a pass (a message of hundreds of MB takes a while): checked before each message, and before its acknowledgement.
  await options.sameFolder?.();
  const metadata = await client.head(messageId);
  if (metadata.messageId !== undefined && metadata.messageId.toUpperCase() !== messageId.toUpperCase()) {
    throw new Error(`asked for message ${messageId}, the server described ${metadata.messageId}`);
  }
  const messageType = metadata.messageType ?? 'DATA';
  const output = payloadFileName(metadata, messageId);
  const metadataName = `${messageId}.json`;
  const metadataPath = join(options.folder, metadataName);
  const names = isReport(metadata) ? [metadataName] : [output, metadataName];
  // The server picks the id, and so the names: a file there is replaced only when an earlier run
  // of this message wrote it (its acknowledgement lost, or its run cut short or failed after).
  const replaced = await claimNames(claims, messageId, names);
  // What a receive of this message cut short by a crash left: its names are this message's own
  // (a `meshbox download` into the same folder at the same time keeps its own), and the whole
  // chunks of a message of several are continued rather than fetched again.
  const continuable = continuableNames(join(options.folder, output), messageId);
  const cutShort = (name: string) =>
    (isTemporaryOf(name, output) && name !== continuable.partial) || isTemporaryOf(name, metadataName) || isTemporaryOf(name, continuable.note);
  await removeLeftoverTemporaries(options.folder, leftovers.filter(cutShort));
  let download: DownloadResult | undefined;
  if (isReport(metadata)) {
    await confirmReport(client, messageId);
  } else {
    download = await downloadFile(client, {
      messageId,
      output,
      cwd: options.folder,
      progress: options.progress,
      overwrite: replaced.has(output),
      described: metadata,
      minFreeBytes: options.minFreeBytes,
    }).catch((error: unknown) => {
      // A file that took the name meanwhile is not this message's (not in its claim's `placed`): it stays, now and later.
      // Of a message of several chunks, DownloadIncompleteError says which are kept.
      throw error instanceof TargetExistsError ? new UnrelatedFileError(messageId, join(options.folder, output), true) : error;
    });
    await recordPlaced(claims, messageId, output, download.path);
    if (download.messageType !== messageType) {
      // downloadFile saved a report (chunk 1 said REPORT) under the payload's name.
      await rm(download.path, { force: true });
      throw typeDisagrees(messageId, messageType, download.messageType);
    }
  }
  // The description last: a program watching the folder takes a message once it appears.
  await writeFileAtomically(metadataPath, messageDescriptionText(metadata, messageId, download), { replace: replaced.has(metadataName) }).catch(
    (error: NodeJS.ErrnoException) => {
      throw error.code === 'EEXIST' ? new UnrelatedFileError(messageId, metadataPath, true) : error;
    },
  );
  await syncFolder(options.folder);
  await recordPlaced(claims, messageId, metadataName, metadataPath);
  // Saved where the run began, or the message stays in the inbox: its files are saved again, there, once it is back.
  await options.sameFolder?.();
  const path = download?.path ?? null;
  await client.acknowledge(messageId).catch(async (error: unknown) => {
    // Expired meanwhile: it comes no more.
    if (isGone(error)) await forgetGone(claims, messageId);
    throw new NotAcknowledgedError(messageId, path ?? metadataPath, error);
  });
  // Its files are the user's now. Best effort: the message is received, and a claim left behind goes after 30 days (ReceiveClaims.read).
  await claims.release(messageId).catch(() => undefined);
  return { messageId, messageType, path, metadataPath, bytes: download?.bytes ?? 0 };
}

/**
 * Records that this run placed `name` (at `path`) for the message. Should that fail (a disk
 * filled meanwhile), the file goes again: left there unrecorded, every later run would refuse it
 * as another's, and the message, never acknowledged, would expire. Only a name not recorded
 * before is written to the claim, and such a name was placed without replacing anything: the
 * file is this run's own.
 */
async function recordPlaced(claims: ReceiveClaims, messageId: string, name: string, path: string): Promise<void> {
  await claims.placed(messageId, name).catch(async (error: unknown) => {
    await rm(path, { force: true }).catch(() => undefined);
    throw error;
  });
}

/**
 * A report has no payload to fetch, but what HEAD says is checked against chunk 1's own headers,
 * as a download of data is: a server whose answers disagree would have a message acknowledged
 * with nothing of it saved.
 */
async function confirmReport(client: MeshClient, messageId: string): Promise<void> {
  const first = await client.downloadRawChunk(messageId, 1);
  first.body.destroy();
  if (!isReport(first.metadata)) throw typeDisagrees(messageId, 'REPORT', first.metadata.messageType ?? 'DATA');
}

/** A message whose HEAD and download say different types: nothing of it is kept, nor is it acknowledged. */
function typeDisagrees(messageId: string, described: string, downloaded: string): Error {
  return new Error(`message ${messageId} was described as ${described} and downloaded as ${downloaded}: nothing is saved or acknowledged`);
}

/** The id first, so that two senders' `results.csv` never meet. */
function payloadFileName(metadata: MessageMetadata, messageId: string): string {
  // A server's name for a message whose sender named none: no name to add to the id.
  const named = namedByServer(metadata.fileName, messageId) ? undefined : metadata.fileName;
  const safe = safeFileName(named);
  return safe === undefined ? defaultFileName(undefined, messageId) : fitFileName(`${messageId}_${safe}`);
}
