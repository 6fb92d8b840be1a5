import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { link, lstat, mkdir, readdir, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { NO_HARD_LINKS } from '../../../shared/src/file-lock.ts';
import { bootMoment, msSinceBootMoment } from '../../../shared/src/processes.ts';
import { MeshErrorCodes } from '../../../shared/src/protocol/index.ts';
import { CHUNK_SIZE_ADVICE, MeshClientError, refusedForNow, refusesChunkSize, refusesTheRequest } from '../client/errors.ts';
import { PassEnd } from './pass-end.ts';
import { headerValue } from '../client/header-values.ts';
import type { MeshClient, TrackingInfo } from '../client/mesh-client.ts';
import { type ControlFields, ControlFile, CONTROL_SUFFIX, controlStats } from './dispatch/control-file.ts';
import { ChangedAfterSendError, DispatchSetupError, RefusedFileError, SendInDoubtError } from './dispatch/errors.ts';
import { type Journal, noteMove, readJournal, removeJournal, removeMoveNote, removeStaleJournals, writeJournal } from './dispatch/journal.ts';
import { FAILED_FOLDER, JOURNAL_FOLDER, SENT_FOLDER } from './dispatch/layout.ts';
import { type Look, Sightings } from './dispatch/sightings.ts';
import { fitFileName } from './download.ts';
import { type AtomicWriteOptions, removeLeftoverTemporaries, syncFolder, temporaryFilesIn, writeFileAtomically } from './durable-files.ts';
import { identityOf, sameFile } from './file-identity.ts';
import { type FolderWork, lockFolder, refuseUnwritable } from './folder-lock.ts';
import type { SameFolderCheck } from './folder-identity.ts';
import { ignoreExisting, ignoreMissing } from './fs-errors.ts';
import { type PollingOptions, pollUntilStopped, RetrySchedule } from './polling.ts';
import type { ProgressFactory } from './progress.ts';
import { ChunkPlan } from './chunking.ts';
import { findSendByLocalId, IN_DOUBT_MS, messageCarrying, sendOutcome, trackedStatus, trackIfKnown } from './send-by-local-id.ts';
import { ChunkUploadError, EmptyFileError, mayHaveBeenSent, type MessageFields, resumeFile, sendFile, type UploadResult } from './upload.ts';

export { CONTROL_SUFFIX } from './dispatch/control-file.ts';
export { FAILED_FOLDER, SENT_FOLDER } from './dispatch/layout.ts';

const DISPATCHING: FolderWork = { lockFile: '.meshbox-dispatch.lock', worker: 'dispatcher' };

/**
 * A file written in place is left alone until it has not changed for this long: by its
 * modification time, and as this process has seen it (see Sightings).
 */
export const SETTLE_MS = 2000;

/** A file sent and moved into `sent/`. */
export interface DispatchReceipt {
  readonly messageId: string;
  /** Its name in the outbox folder. */
  readonly file: string;
  /** Where it is now, `sent/<ID>_<file>`, beside `sent/<ID>.json` (this receipt). */
  readonly sentPath: string;
  readonly to: string;
  readonly workflowId: string;
  readonly subject: string | null;
  readonly localId: string;
  readonly bytes: number;
  readonly chunks: number;
  /** True when an earlier, interrupted run had sent it (found again, not sent twice). */
  readonly recovered: boolean;
  readonly sentAt: string;
}

export interface DispatchOptions {
  readonly folder: string;
  /** Run before each pass: throws when the folder is no longer the one the run began with (see sameFolderCheck). */
  readonly sameFolder?: SameFolderCheck;
  /** Used where a file has no control file, or its control file leaves a field out. */
  readonly defaults: Omit<ControlFields, 'localId' | 'fileName'>;
  readonly chunkSize: number;
  readonly gzip: boolean;
  readonly checksum: boolean;
  readonly progress: ProgressFactory;
  readonly onSent: (receipt: DispatchReceipt) => void;
  /** A file the server (or its control file) refuses for good: moved into `failed/` with the reason. */
  readonly onRefused: (file: string, reason: string) => void;
  /** A file that could not be sent this time (the server away, the file changing): it stays for the next pass. */
  readonly onFailed: (file: string, error: unknown) => void;
  /** Stops the pass; give the client the same signal to end the send in hand too. */
  readonly signal?: AbortSignal;
  /** Leaves out files for now (those that failed recently, when watching). */
  readonly skip?: (file: string) => boolean;
  /** The files earlier passes saw (when watching): one seen unchanged since goes without waiting to be seen settle. */
  readonly sightings?: Sightings;
  /** Every file waiting in the folder for this pass. */
  readonly onListed?: (files: readonly string[]) => void;
  /** A file (or its control file) changed too recently to be taken: left for a later pass, until `settlesAt` at the soonest. */
  readonly onUnsettled?: (file: string, settlesAt: Date) => void;
  /** A control file that has had no file beside it for LONE_CONTROL_MS (misnamed?), at every pass while it stays so. */
  readonly onLoneControlFile?: (control: LoneControlFile) => void;
}

/**
 * A control file is put in before its file (dispatch --help says so), and a large file may take
 * a while to come; one alone for this long is more likely misnamed, its file gone with the defaults.
 */
export const LONE_CONTROL_MS = 10 * 60_000;

/** A control file with no file of its name beside it. */
export interface LoneControlFile {
  /** Its name in the folder: `<file>.ctl.json`. */
  readonly name: string;
  /** The file it waits for. */
  readonly file: string;
  /** When it last changed. */
  readonly changedAt: Date;
}

/** What a pass did not send: files that stay for the next pass, and files moved into `failed/`. */
export interface DispatchOutcome {
  readonly failed: number;
  readonly refused: number;
}

/**
 * Folders whose crash leftovers (temporary files in sent/, failed/ and the notes folder) this
 * process has removed. Its own writes leave none, only a crash does: once per process and folder
 * is enough, and sent/, which grows by two files with every message, is not read at every pass.
 */
const leftoversRemoved = new Set<string>();

/**
 * Sends every file waiting in the outbox folder, each as one message (in chunks as large
 * files need), then moves it into `sent/` beside a receipt. A file the server refuses
 * (unknown recipient, workflow not allowed, a bad control file) goes into `failed/` beside
 * the reason; one that fails otherwise stays and is tried again next pass. Hidden files,
 * `.part` and `.tmp` files, control files, what is not a file (a link to one is followed) and
 * files changed in the last two seconds (by their time, or as the pass sees them: one new to
 * it goes only once the pass has waited that long and found it unchanged) are left alone; a
 * file that cannot be looked at (its name not UTF-8, a link it cannot follow) fails alone. A
 * folder that cannot be read, or that another dispatcher is working on, throws.
 */
export async function dispatchFolder(client: MeshClient, options: DispatchOptions): Promise<DispatchOutcome> {
  const { folder } = options;
  await options.sameFolder?.();
  // Not recursive: an outbox that has gone (an unmounted share) must fail the pass, not be made anew.
  for (const name of [SENT_FOLDER, FAILED_FOLDER, JOURNAL_FOLDER]) await mkdir(join(folder, name)).catch(ignoreExisting).catch(refuseUnwritable(folder, DISPATCHING));
  const unlock = await lockFolder(folder, DISPATCHING);
  try {
    if (!leftoversRemoved.has(folder)) {
      // Its own folders only: the outbox's hidden and .part files are whoever writes them there.
      for (const name of [SENT_FOLDER, FAILED_FOLDER, JOURNAL_FOLDER]) await removeLeftoverTemporaries(join(folder, name), await temporaryFilesIn(join(folder, name)));
      leftoversRemoved.add(folder);
    }
    const { ready, unsettled, unusable, loneControls, looks } = await waitingFiles(folder);
    const sightings = options.sightings ?? new Sightings();
    sightings.listed(looks);
    // A file unusable for now (a share's ESTALE) may be part-sent: its note must outlive this pass.
    const unusableNames = unusable.map(({ file }) => file);
    await removeStaleJournals(folder, [...ready, ...unsettled.map(({ file }) => file), ...unusableNames]);
    options.onListed?.([...ready, ...unusableNames]);
    for (const { file, settlesAt } of unsettled) options.onUnsettled?.(file, settlesAt);
    for (const control of loneControls) options.onLoneControlFile?.(control);
    let failed = 0;
    let refused = 0;
    const passEnd = new PassEnd();
    for (const { file, problem } of unusable) {
      if (options.skip?.(file)) continue;
      failed += 1;
      options.onFailed(file, problem);
    }
    for (const file of ready) {
      if (options.signal?.aborted) break;
      if (options.skip?.(file)) continue;
      let receipt: DispatchReceipt | undefined;
      let taken: Stats | undefined;
      const control = new ControlFile(folder, file);
      try {
        // Its time is the file server's clock, which may run behind: it must be seen unchanged for as long by this process too.
        await sightings.waitToSettle(file, SETTLE_MS, options.signal);
        taken = await stat(join(folder, file)).catch(ignoreMissing);
        // Taken away by its writer since the listing: nothing to send, nor to report.
        if (taken === undefined) continue;
        // Written to again since it was seen (while the pass waited, or earlier files of the pass went): for a later pass, which must see it settle anew.
        const look = await lookAt(folder, file, taken);
        const settlesAt = Math.max(settlingTime(look), sightings.unchangedSinceSeen(file, look) ? 0 : Date.now() + SETTLE_MS);
        if (settlesAt > Date.now()) {
          options.onUnsettled?.(file, new Date(settlesAt));
          continue;
        }
        receipt = await dispatchFile(client, file, taken, control, options);
        passEnd.served();
      } catch (error) {
        // Stopped part-way: the journal lets the next run finish the same message.
        if (options.signal?.aborted) break;
        // The files after it would fail alike, each after its retries: the pass ends (a watch waits out its backoff).
        if (passEnd.endsAt(error)) throw error;
        const refusal = refusalOf(error);
        if (refusal !== undefined && taken !== undefined && (await movedToFailed(folder, file, taken, control, refusal, options))) {
          refused += 1;
          options.onRefused(file, refusal);
        } else {
          failed += 1;
          if (refusal === undefined) options.onFailed(file, error);
        }
      }
      if (receipt) options.onSent(receipt);
    }
    return { failed, refused };
  } finally {
    await unlock();
  }
}

/** Moves a refused file into `failed/`; one that cannot be moved (a full disk) is reported as failed, and stays. */
async function movedToFailed(folder: string, file: string, taken: Stats, control: ControlFile, reason: string, options: DispatchOptions): Promise<boolean> {
  try {
    if (await moveToFailed(folder, file, taken, control, reason)) return true;
    options.onFailed(file, new Error(`${reason}; a newer file of its name came meanwhile: it stays, to go itself`));
    return false;
  } catch (error) {
    options.onFailed(file, new Error(`${reason}; and it could not be moved into ${FAILED_FOLDER}/: ${(error as Error).message}`));
    return false;
  }
}

export interface DispatchWatchOptions extends Omit<DispatchOptions, 'skip' | 'onListed' | 'signal' | 'sightings'>, PollingOptions {}

/** Sends what arrives in the folder, pass after pass, until the signal stops it; a failing file waits out a growing backoff. */
export async function watchFolder(client: MeshClient, options: DispatchWatchOptions): Promise<void> {
  const retries = new RetrySchedule(options.intervalMs);
  const pass: DispatchOptions = {
    ...options,
    skip: (file) => retries.waiting(file),
    sightings: new Sightings(),
    onListed: (files) => retries.keepOnly(files),
    onSent: (receipt) => {
      retries.forget(receipt.file);
      options.onSent(receipt);
    },
    onFailed: (file, error) => {
      // In doubt: nothing is learnt by looking before it may go, nor should a backoff keep it past then.
      if (error instanceof SendInDoubtError) retries.holdFor(file, error.resendAt.getTime() - Date.now());
      else retries.failed(file);
      if (refusedForNow(error)) options.onItemRefused?.();
      options.onFailed(file, error);
    },
  };
  await pollUntilStopped(() => dispatchFolder(client, pass), options);
}

/**
 * The file (as `info` has it) and its control file, which too may still be being written. A
 * control file that cannot be looked at is the file's own failure, met when it is sent.
 */
async function lookAt(folder: string, file: string, info: Stats): Promise<Look> {
  return { file: info, control: await controlStats(folder, file).catch(() => undefined) };
}

/** When, by their modification times, neither the file nor its control file will have changed for SETTLE_MS. */
function settlingTime({ file, control }: Look): number {
  return Math.max(file.mtimeMs, control?.mtimeMs ?? 0) + SETTLE_MS;
}

interface UnsettledFile {
  readonly file: string;
  /** When neither it nor its control file will have changed for SETTLE_MS, if they are left alone. */
  readonly settlesAt: Date;
}

/** A file in the folder that cannot be sent as it is: why, for the user to put right. */
interface UnusableFile {
  readonly file: string;
  readonly problem: Error;
}

/**
 * Names never sent: written elsewhere and renamed into place (`.part`, `.tmp`, in any case:
 * Windows makes `~DF12AB.TMP`), and what Windows Explorer leaves in a folder it shows.
 */
const NOT_RESULTS = /\.(part|tmp)$|^(thumbs\.db|desktop\.ini)$/i;

/**
 * The folder's files (by name): those ready to go, those (or their control files) still being
 * written, and those that cannot be read as they are. One entry's trouble is its own: it stops
 * no other file from going.
 */
async function waitingFiles(
  folder: string,
): Promise<{
  readonly ready: string[];
  readonly unsettled: UnsettledFile[];
  readonly unusable: UnusableFile[];
  readonly loneControls: LoneControlFile[];
  /** How each file and its control file looked. */
  readonly looks: Map<string, Look>;
}> {
  const now = Date.now();
  const looks = new Map<string, Look>();
  const ready: string[] = [];
  const unsettled: UnsettledFile[] = [];
  const unusable: UnusableFile[] = [];
  const names = new Set<string>();
  const controls: string[] = [];
  // As bytes: a name that is not UTF-8 (a legacy system's Latin-1 `résultat.hl7`) would otherwise be read as another name, found missing and passed over in silence.
  for (const entry of await readdir(folder, { withFileTypes: true, encoding: 'buffer' })) {
    const name = entry.name.toString('utf8');
    names.add(name);
    if (entry.isFile() && !name.startsWith('.') && name.endsWith(CONTROL_SUFFIX)) controls.push(name);
    if (!(entry.isFile() || entry.isSymbolicLink()) || name.startsWith('.') || NOT_RESULTS.test(name) || name.endsWith(CONTROL_SUFFIX)) continue;
    if (!Buffer.from(name, 'utf8').equals(entry.name)) {
      unusable.push({ file: name, problem: new Error(`its name is not UTF-8 (bytes ${entry.name.toString('hex')}): rename it to send it`) });
      continue;
    }
    // A link is followed (some systems link large files into the outbox rather than copy them): what it leads to must be a file.
    let info: Stats | undefined;
    try {
      info = await stat(join(folder, name)).catch(ignoreLinkToNothing);
    } catch (error) {
      unusable.push({ file: name, problem: error as Error });
      continue;
    }
    if (!info?.isFile()) continue;
    const look = await lookAt(folder, name, info);
    looks.set(name, look);
    const settlesAt = settlingTime(look);
    if (settlesAt <= now) ready.push(name);
    else unsettled.push({ file: name, settlesAt: new Date(settlesAt) });
  }
  return { ready: ready.sort(), unsettled, unusable, loneControls: await loneControlFiles(folder, controls, names, now), looks };
}

/** The control files (by name) with no entry of their file's name beside them, unchanged for LONE_CONTROL_MS. */
async function loneControlFiles(folder: string, controls: readonly string[], names: ReadonlySet<string>, now: number): Promise<LoneControlFile[]> {
  const lone: LoneControlFile[] = [];
  for (const name of [...controls].sort()) {
    const file = name.slice(0, -CONTROL_SUFFIX.length);
    if (names.has(file)) continue;
    // Gone since the listing (its file came and went with it): nothing to say.
    const info = await stat(join(folder, name)).catch(() => undefined);
    if (info && info.mtimeMs + LONE_CONTROL_MS <= now) lone.push({ name, file, changedAt: info.mtime });
  }
  return lone;
}

/** A link that leads to no file: to nothing, round a loop, through a file as if a folder, or along a path too long to be one. */
const LINK_TO_NOTHING = new Set(['ELOOP', 'ENOTDIR', 'ENAMETOOLONG']);

/** For `.catch()` on a stat through a link: one leading to no file is nothing there (undefined), like a missing file. */
function ignoreLinkToNothing(error: NodeJS.ErrnoException): undefined {
  return LINK_TO_NOTHING.has(error.code ?? '') ? undefined : ignoreMissing(error);
}

async function dispatchFile(client: MeshClient, file: string, info: Stats, control: ControlFile, options: DispatchOptions): Promise<DispatchReceipt> {
  const path = join(options.folder, file);
  // Refused whether or not it would go gzipped (as some bytes): an empty file in an outbox is a
  // result not written yet (a placeholder made first and filled later), never one to send.
  if (info.size === 0) throw new EmptyFileError(path);
  // An earlier run's message first: it went with what it went with, whatever the control file says now.
  const journal = await readJournal(options.folder, file);
  // Inode numbers are told only on the device they were noted on: a share mounted anew (this boot) is another device, its files the same.
  const remounted = journal?.dev !== undefined && journal.dev !== info.dev;
  const sameAsNoted = journal !== undefined && sameFile(info, remounted ? { size: journal.size, mtimeMs: journal.mtimeMs } : journal);
  // What the earlier run's send went with, and goes with the file; one found not to have gone is addressed anew.
  if (sameAsNoted) control.readBefore(remounted ? journal.control && { size: journal.control.size, mtimeMs: journal.control.mtimeMs } : journal.control);
  const previous = sameAsNoted ? await findEarlierSend(client, journal) : undefined;
  const outcome = previous && sendOutcome(previous);
  if (previous && (outcome === 'failed' || outcome === 'unknown')) throw new RefusedFileError(notSentAgain(previous, outcome));
  if (previous && outcome === 'sent') {
    return finish(options.folder, file, info, control, sentWith(previous, file), {
      messageId: previous.message_id,
      bytes: info.size,
      // MESH's v2 tracking has no chunk_count: that run split this file (same size and time) by its noted chunk size.
      chunks: previous.chunk_count ?? new ChunkPlan(info.size, journal!.chunkSize).totalChunks,
      recovered: true,
    });
  }
  if (previous && outcome === 'uploading') {
    const resumed = await resumeFile(client, {
      path,
      taken: info,
      chunkSize: journal!.chunkSize,
      // The same file (size and time) as that run sent, split as it was: its chunk count is the message's.
      chunkSizeOfFirstRun: true,
      gzip: journal!.gzip,
      progress: options.progress,
      messageId: previous.message_id,
      expected: {},
      requireChecksum: false,
    });
    refuseChangedAfterSend(file, resumed);
    return finish(options.folder, file, info, control, sentWith(previous, file), {
      messageId: resumed.messageId,
      bytes: resumed.bytes,
      chunks: resumed.totalChunks,
      recovered: true,
    });
  }
  if (sameAsNoted) refuseWhileInDoubt(file, journal, info.size);
  // Never sent, or an upload the server discarded before it was complete: a new message.
  const controlFields = await control.read();
  const fields = messageFields(file, controlFields, options.defaults);
  // An earlier try's own local id again: should that try arrive after all, the two can be told for one.
  const localId = fields.localId ?? (sameAsNoted ? journal.localId : `dispatch-${randomBytes(8).toString('hex')}`);
  let started: Journal = {
    file,
    ...identityOf(info),
    control: control.identityRead,
    localId,
    // A local id of our own making is new; one from a control file may have been used before.
    earlier: fields.localId === undefined ? null : await messageCarrying(client, localId),
    sentTo: fields.to,
    sentWorkflowId: fields.workflowId,
    sentFileName: fields.fileName,
    messageId: null,
    ...attemptingNow(),
    chunkSize: options.chunkSize,
    gzip: options.gzip,
  };
  await writeJournal(options.folder, started);
  const sent = await sendFile(client, {
    path,
    taken: info,
    chunkSize: options.chunkSize,
    gzip: options.gzip,
    progress: options.progress,
    checksum: options.checksum,
    message: { ...fields, localId },
    onStarted: (messageId) => {
      started = { ...started, messageId };
      return writeJournal(options.folder, started);
    },
    // Any try may be on its way for as long as the first: the wait counts from the last.
    beforeRetry: () => {
      started = { ...started, ...attemptingNow() };
      return writeJournal(options.folder, started);
    },
  }).catch(async (error: unknown) => {
    // No message, and surely none on its way: the next pass need not wait to find out. (One
    // whose id is known is found by it, and resumed.)
    if (started.messageId === null && !mayHaveBeenSent(error)) await writeJournal(options.folder, { ...started, attemptedAt: null }).catch(() => undefined);
    throw asSetupError(error, controlFields.to === undefined && controlFields.workflowId === undefined);
  });
  refuseChangedAfterSend(file, sent);
  return finish(options.folder, file, info, control, { ...fields, localId }, { messageId: sent.messageId, bytes: sent.bytes, chunks: sent.totalChunks, recovered: false });
}

/** A try of a send going now, by the wall clock and the monotonic one (the journal notes both, or neither is right). */
function attemptingNow(): Pick<Journal, 'attemptedAt' | 'attemptedOnBoot'> {
  return { attemptedAt: Date.now(), attemptedOnBoot: bootMoment() };
}

/** A one-chunk send of this file whose outcome is unknown, not found on the server yet: it waits. */
function refuseWhileInDoubt(file: string, journal: Journal, size: number): void {
  if (journal.messageId !== null || journal.attemptedAt === null || new ChunkPlan(size, journal.chunkSize).totalChunks > 1) return;
  const sinceAttemptMs = msSinceBootMoment(journal.attemptedOnBoot) ?? Date.now() - journal.attemptedAt;
  const resendAt = Date.now() + IN_DOUBT_MS - sinceAttemptMs;
  if (sinceAttemptMs < IN_DOUBT_MS) throw new SendInDoubtError(file, journal.localId, new Date(journal.attemptedAt), new Date(resendAt));
}

/**
 * A file still being written when its last chunk went: the message holds only what there was.
 * The file stays, and once it has settled it no longer matches its journal, so it goes again
 * as a new message: the recipient gets the whole file, after the part.
 */
function refuseChangedAfterSend(file: string, sent: UploadResult): void {
  if (sent.changedAfterSend) throw new ChangedAfterSendError(file, sent.messageId, sent.bytes);
}

/**
 * Why a file whose earlier run's message the server has, failed or in a state not known here,
 * is not sent again: it went (or may have), so another would be a duplicate, which a person
 * must choose to send.
 */
function notSentAgain(previous: TrackingInfo, outcome: 'failed' | 'unknown'): string {
  const what = `an earlier run sent it as message ${previous.message_id}, which the server reports ${trackedStatus(previous)}`;
  const then =
    outcome === 'failed'
      ? 'it went, and will not be delivered now'
      : 'a status dispatch does not know, so whether it is delivered cannot be told from here';
  return `${what}: ${then}; it is not sent again (put it back into the folder to send it as a new message)`;
}

/** What an earlier run's message was sent with (the control file may have changed, or be gone, since). */
function sentWith(previous: TrackingInfo, file: string): MessageFields {
  return {
    to: previous.recipient ?? '',
    workflowId: previous.workflow_id ?? '',
    fileName: previous.filename ?? file,
    ...(previous.subject ? { subject: previous.subject } : {}),
    ...(previous.local_id ? { localId: previous.local_id } : {}),
  };
}

/** The message an interrupted run sent for this file, if the server has it. */
async function findEarlierSend(client: MeshClient, journal: Journal): Promise<TrackingInfo | undefined> {
  if (journal.messageId !== null) return trackIfKnown(client, journal.messageId);
  const found = await findSendByLocalId(client, {
    localId: journal.localId,
    earlier: journal.earlier,
    to: journal.sentTo,
    workflowId: journal.sentWorkflowId,
    fileName: journal.sentFileName,
  });
  if (found === 'several') {
    throw new RefusedFileError(
      `an earlier run was cut short while sending it, and several messages carry its local id ${journal.localId}, ` +
        'so whether it went cannot be told from here: ask the recipient, or compare sent/ receipts, and put it back ' +
        'into the folder (with a local id of its own in its control file) if it did not',
    );
  }
  return found;
}

/**
 * The receipt first, then the file into `sent/`; the journal goes last, so an interrupted finish
 * is simply done again. Only the file taken for this pass moves (see moveTaken): one of its name
 * that is another by now stays, with its control file, to go next pass. Only the control file
 * the send was addressed by is deleted: one put in since is the next file's.
 */
async function finish(
  folder: string,
  file: string,
  taken: Stats,
  control: ControlFile,
  fields: MessageFields,
  sent: { readonly messageId: string; readonly bytes: number; readonly chunks: number; readonly recovered: boolean },
): Promise<DispatchReceipt> {
  const sentName = fitFileName(`${sent.messageId}_${file}`);
  const receipt: DispatchReceipt = {
    messageId: sent.messageId,
    file,
    sentPath: join(folder, SENT_FOLDER, sentName),
    to: fields.to,
    workflowId: fields.workflowId,
    subject: fields.subject ?? null,
    localId: fields.localId ?? '',
    bytes: sent.bytes,
    chunks: sent.chunks,
    recovered: sent.recovered,
    sentAt: new Date().toISOString(),
  };
  await writeFileAtomically(join(folder, SENT_FOLDER, `${sent.messageId}.json`), `${JSON.stringify(receipt, null, 2)}\n`, likeWhatItTells(taken));
  await noteMove(folder, { file, size: taken.size, mtimeMs: taken.mtimeMs, controlTo: null, control: control.identityRead });
  // A file removed once it had gone (read whole) leaves only its receipt.
  const moved = await moveTaken(join(folder, file), receipt.sentPath, taken);
  // After the file (else an interrupted finish would leave the file without it): should this be cut short, the note has the next pass do it.
  if (moved !== 'replaced') await control.remove();
  await syncFolder(join(folder, SENT_FOLDER));
  await syncFolder(folder);
  await removeJournal(folder, file);
  await removeMoveNote(folder, file);
  return receipt;
}

/**
 * A receipt's or a refusal's mode and owner: those of the file it tells of (the mode under the
 * umask, as any new file's). It names the file and holds its subject and local id, often a
 * patient's name or number: a lab system's private result must not leave them readable by every
 * local user, nor, with dispatch running as root (a container), unreadable by the lab system.
 */
function likeWhatItTells(file: Stats): AtomicWriteOptions {
  return { mode: file.mode & 0o666, owner: { uid: file.uid, gid: file.gid } };
}

/**
 * Moves the file taken for this pass, and no other: one that has taken its name since (a
 * corrected result renamed into place while the first went) is another message's, and stays
 * for the next pass. Looked at before the move and after it: one renamed into place between the
 * two is given its name back (by a link, which never replaces a file newer still).
 */
async function moveTaken(from: string, to: string, taken: Stats): Promise<'moved' | 'gone' | 'replaced'> {
  const before = await stat(from).catch(ignoreMissing);
  if (!before) return 'gone';
  if (!sameFile(before, taken)) return 'replaced';
  // The entry itself, not what a link leads to: a relative link leads elsewhere once moved.
  const entry = await lstat(from);
  await rename(from, to);
  if (keptByRename(await lstat(to), entry)) return 'moved';
  try {
    await link(to, from);
    await unlink(to);
  } catch (error) {
    // Where there are no hard links (FAT, many SMB mounts) a rename gives the name back.
    if (!NO_HARD_LINKS.has((error as NodeJS.ErrnoException).code ?? '')) {
      throw new Error(`${from} was replaced twice while it was being moved: ${to} is not the file that went, but a later one; put it back`, { cause: error });
    }
    await rename(to, from);
  }
  return 'replaced';
}

/**
 * The entry moved, as it was before the move: the same size and modification time, which a
 * rename keeps on every file system (not so the inode number: FAT's changes with the name, and
 * some SMB mounts make them up), and a file written anew changes.
 */
function keptByRename(moved: Stats, entry: Stats): boolean {
  return moved.size === entry.size && moved.mtimeMs === entry.mtimeMs;
}

/** Leaves room within a name's 255 bytes for `.error.json` and the temporary name it is written under. */
const FAILED_NAME_BYTES = 200;

/**
 * Moves the file (and the control file read for it) into `failed/` under a unique, time-stamped
 * name, beside `<name>.error.json`. False when a file that has taken its name since is there
 * instead: not the one refused, it stays (with its control file), to be tried itself.
 */
async function moveToFailed(folder: string, file: string, taken: Stats, control: ControlFile, reason: string): Promise<boolean> {
  const now = await stat(join(folder, file)).catch(ignoreMissing);
  if (now && !sameFile(now, taken)) return false;
  const failedAt = new Date().toISOString();
  const unique = `${failedAt.replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}`;
  const failedName = fitFileName(`${unique}_${file}`, FAILED_NAME_BYTES);
  const failed = join(folder, FAILED_FOLDER);
  await writeFileAtomically(join(failed, `${failedName}.error.json`), `${JSON.stringify({ file, reason, failedAt }, null, 2)}\n`, likeWhatItTells(taken));
  const controlTo = join(failed, `${failedName}${CONTROL_SUFFIX}`);
  await noteMove(folder, { file, size: taken.size, mtimeMs: taken.mtimeMs, controlTo, control: control.identityRead });
  // The file first: a control file moved without it would let the file go with the defaults.
  const moved = await moveTaken(join(folder, file), join(failed, failedName), taken);
  if (moved === 'gone') throw new Error(`${file} is gone from the folder`);
  if (moved === 'moved') await control.moveTo(controlTo);
  await syncFolder(failed);
  await syncFolder(folder);
  await removeJournal(folder, file);
  await removeMoveNote(folder, file);
  return moved === 'moved';
}

/**
 * A refusal that is the setup's fault, not the file's, so that every file would be refused
 * alike: chunks larger than the server takes (--chunk-size), or a recipient or workflow refused
 * (417, code 12 or 17) when both came from --to and --workflow. The files stay until it is mended.
 */
function asSetupError(error: unknown, addressedByFlags: boolean): unknown {
  const cause = error instanceof ChunkUploadError ? error.cause : error;
  if (refusesChunkSize(cause)) {
    return new DispatchSetupError(`${(error as Error).message}; ${CHUNK_SIZE_ADVICE}`, { cause: error });
  }
  // Other 417s (an empty file, too many chunks) are the file's: it goes to failed/ like any refused file.
  const addressRefused =
    addressedByFlags &&
    cause instanceof MeshClientError &&
    cause.status === 417 &&
    (cause.code === MeshErrorCodes.unregisteredRecipient.code || cause.code === MeshErrorCodes.workflowNotRegistered.code);
  if (!addressRefused) return error;
  return new DispatchSetupError(`${cause.message}: check --to and --workflow`, { cause: error });
}

/** The reason to give up on a file, or undefined when trying it again later may work. */
function refusalOf(error: unknown): string | undefined {
  if (error instanceof RefusedFileError || error instanceof EmptyFileError) return error.message;
  const cause = error instanceof ChunkUploadError ? error.cause : error;
  // What the server says about the message itself; an authentication failure (403) or an outage is about the setup, not this file.
  if (refusesTheRequest(cause)) return cause.message;
  return undefined;
}

function messageFields(
  file: string,
  control: ControlFields,
  defaults: DispatchOptions['defaults'],
): MessageFields & { readonly fileName: string; readonly localId?: string } {
  const to = control.to ?? defaults.to;
  const workflowId = control.workflowId ?? defaults.workflowId;
  if (to === undefined || workflowId === undefined) {
    // A flag left out of the command that runs dispatch would otherwise send the whole outbox to failed/.
    const missing = [to === undefined ? 'recipient' : undefined, workflowId === undefined ? 'workflow' : undefined].filter(Boolean).join(' and ');
    throw new DispatchSetupError(`nothing says where ${file} goes (no ${missing}): give --to and --workflow, or put them in ${file}${CONTROL_SUFFIX}`);
  }
  const subject = control.subject ?? defaults.subject;
  // The flags and the control file's fields were checked when read; the file's own name is here.
  const fileName = control.fileName ?? headerValue(file);
  if (fileName === undefined) {
    throw new RefusedFileError(`its name cannot go as a MESH header (Latin-1 text on one line): give fileName in ${file}${CONTROL_SUFFIX}`);
  }
  return {
    to,
    workflowId,
    fileName,
    ...(subject === undefined ? {} : { subject }),
    ...(control.localId === undefined ? {} : { localId: control.localId }),
  };
}

