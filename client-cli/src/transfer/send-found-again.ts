import { ChunkPlan } from './chunking.ts';
import { findSendByLocalId, messageCarrying, sendOutcome, trackedStatus } from './send-by-local-id.ts';
import { changedFile, type ChunkUploadError, fileStats, mayHaveBeenSent, sendFile, type SendFileOptions, type UploadResult } from './upload.ts';
import { MeshConnectionError } from '../client/errors.ts';
import type { MeshClient, TrackingInfo } from '../client/mesh-client.ts';

/** A send sendFileFindingItAgain settled through tracking. */
export interface FoundSend extends UploadResult {
  /** Why the send itself failed, though tracking found its message recorded. */
  readonly sendFailure: ChunkUploadError;
}

/** A one-chunk send in doubt that tracking could not settle: no message carries its local id yet, or several do. */
export class StillInDoubtError extends Error {
  readonly localId: string;
  readonly found: 'none yet' | 'several';

  constructor(failure: ChunkUploadError, localId: string, found: StillInDoubtError['found']) {
    super(failure.message, { cause: failure });
    this.name = 'StillInDoubtError';
    this.localId = localId;
    this.found = found;
  }
}

/**
 * A one-chunk send in doubt whose message tracking found recorded, but failed since (or in a
 * status not known here): it went, so sending the file again makes another message.
 */
export class FoundFailedError extends Error {
  constructor(failure: ChunkUploadError, localId: string, found: TrackingInfo, outcome: 'failed' | 'unknown') {
    const fate = outcome === 'failed' ? 'it was sent, and will not be delivered now' : `it was sent, and what became of it is for meshbox track ${found.message_id} to tell`;
    super(
      `${failure.message}; but tracking finds message ${found.message_id} with local id ${localId} recorded, which the server reports ` +
        `${trackedStatus(found)}: ${fate} (sending the file again makes a new message)`,
      { cause: failure },
    );
    this.name = 'FoundFailedError';
  }
}

/**
 * sendFile; and when a one-chunk message carrying a local id fails in doubt (mayHaveBeenSent: its
 * answer lost, the server failing after it may have recorded it), a look for it by that id, as
 * dispatch looks: found recorded, it was sent (a FoundSend, or FoundFailedError when it failed
 * since); else StillInDoubtError says what tracking found. The message carrying the local id
 * before the send is asked for first (one request): it is not this send's. Should that ask fail
 * while the server is reachable, the send goes all the same, and a doubt is left as the send's
 * own failure.
 */
export async function sendFileFindingItAgain(client: MeshClient, options: SendFileOptions): Promise<UploadResult | FoundSend> {
  const { localId } = options.message;
  const file = options.taken ?? (await fileStats(options.path));
  const send = { ...options, taken: file };
  if (localId === undefined || new ChunkPlan(file.size, options.chunkSize).totalChunks > 1) return sendFile(client, send);
  // Failed (a server without the lookup, an answer cut off), the send goes all the same, only not
  // found again should it end in doubt; a server not reached at all would not be by the send
  // either, nor would a stop: their retries are not spent twice.
  const earlier = await messageCarrying(client, localId).catch((error: unknown) => {
    if ((error instanceof MeshConnectionError && !error.mayHaveArrived) || client.signal?.aborted) throw error;
    return undefined;
  });
  try {
    return await sendFile(client, send);
  } catch (error) {
    if (earlier === undefined || !mayHaveBeenSent(error) || client.signal?.aborted) throw error;
    const failure = error as ChunkUploadError;
    const { to, workflowId, fileName = '' } = options.message;
    // Tracking that cannot be asked settles nothing: the send's own failure says what is unknown.
    const found = await findSendByLocalId(client, { localId, earlier, to, workflowId, fileName }).catch(() => {
      throw failure;
    });
    if (found === 'several') throw new StillInDoubtError(failure, localId, 'several');
    const outcome = found && sendOutcome(found);
    if (found && (outcome === 'failed' || outcome === 'unknown')) throw new FoundFailedError(failure, localId, found, outcome);
    if (found === undefined || outcome !== 'sent') throw new StillInDoubtError(failure, localId, 'none yet');
    const changedAfterSend = (await changedFile(options.path, file)) !== undefined;
    return { messageId: found.message_id, totalChunks: 1, bytes: file.size, uploadedChunks: 1, changedAfterSend, sendFailure: failure };
  }
}
