import type { IncomingHttpHeaders } from 'node:http';
import { MeshHeaders } from '../../../shared/src/protocol/index.ts';

/** The mex-* headers of a download or HEAD, read into named fields. */
export interface MessageMetadata {
  readonly messageId: string | undefined;
  /** `DATA` or `REPORT`. */
  readonly messageType: string | undefined;
  /** Absent on non-delivery reports. */
  readonly from: string | undefined;
  readonly to: string | undefined;
  readonly workflowId: string | undefined;
  readonly localId: string | undefined;
  readonly subject: string | undefined;
  readonly fileName: string | undefined;
  readonly checksum: string | undefined;
  /** This chunk's number, from mex-Chunk-Range `n:N`. */
  readonly chunkNumber: number;
  /** Chunks in the message; at least 1 (a report says `1:0` but still has one, empty, chunk). */
  readonly totalChunks: number;
  /** Of a non-delivery report: the message it is about, and why it was not delivered. */
  readonly linkedMessageId: string | undefined;
  readonly statusCode: string | undefined;
  readonly statusDescription: string | undefined;
  /** Every response header, lower-case names, for anything not named above. */
  readonly headers: Readonly<Record<string, string>>;
}

function flatten(headers: IncomingHttpHeaders): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return flat;
}

function positiveInteger(value: string | undefined): number | undefined {
  if (value === undefined || !/^\s*\d+\s*$/.test(value)) return undefined;
  const number = Number(value);
  return number > 0 ? number : undefined;
}

/**
 * More chunks than any message has (MESH: 100 GB in chunks of 20 MB or more; meshbox's limit is
 * 10,000 by default): a count beyond is a broken or hostile answer, not a download to begin.
 */
const MAX_TOTAL_CHUNKS = 100_000;

/** The message's chunk count, from the two headers that state it; they must agree (a report's `0` is its one empty chunk). */
function chunkCount(declared: string | undefined, inRange: string | undefined): number {
  const [fromHeader, fromRange] = [declared, inRange].map((value) => (value === undefined || value.trim() === '' ? undefined : (positiveInteger(value) ?? 1)));
  if (fromHeader !== undefined && fromRange !== undefined && fromHeader !== fromRange) {
    throw new Error(`the server's answer contradicts itself: ${fromHeader} chunks by mex-Total-Chunks, ${fromRange} by mex-Chunk-Range`);
  }
  const count = fromHeader ?? fromRange ?? 1;
  if (count > MAX_TOTAL_CHUNKS) throw new Error(`the server's answer says the message has ${declared ?? inRange} chunks, more than any message has`);
  return count;
}

export function metadataFromHeaders(headers: IncomingHttpHeaders): MessageMetadata {
  const flat = flatten(headers);
  const get = (name: string): string | undefined => flat[name.toLowerCase()] || undefined;
  const [chunk, total] = (get(MeshHeaders.chunkRange) ?? '').split(':');
  return {
    messageId: get(MeshHeaders.messageId),
    messageType: get(MeshHeaders.messageType),
    from: get(MeshHeaders.from),
    to: get(MeshHeaders.to),
    workflowId: get(MeshHeaders.workflowId),
    localId: get(MeshHeaders.localId),
    subject: get(MeshHeaders.subject),
    fileName: get(MeshHeaders.fileName),
    checksum: get(MeshHeaders.contentChecksum),
    chunkNumber: positiveInteger(chunk) ?? 1,
    // mex-Total-Chunks is the spec's answer; older servers only send the range.
    totalChunks: chunkCount(get(MeshHeaders.totalChunks), total),
    linkedMessageId: get(MeshHeaders.linkedMessageId),
    statusCode: get(MeshHeaders.statusCode),
    statusDescription: get(MeshHeaders.statusDescription),
    headers: flat,
  };
}

/** Whether a file name is the one a server gives a message whose sender named none: `<ID>.dat`, as MESH names it. */
export function namedByServer(fileName: string | undefined, messageId: string): boolean {
  return fileName?.toUpperCase() === `${messageId.toUpperCase()}.DAT`;
}
