import type { IncomingHttpHeaders } from 'node:http';
import { mailboxIdOf, MeshErrorCodes, MeshHeaders, parseChunkRange } from '../../../shared/src/protocol/index.ts';
import { BadRequestError, MeshError, SendRejectedError } from '../domain/errors.ts';
import type { ChunkBody, OutgoingMetadata } from '../domain/send.ts';
import type { Readable } from 'node:stream';

// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const CONTROL_CHARACTERS = /[\u0000-\u001f]/;
const URL_LIKE = /^https?:\/\//i;
const URL_CHECKED: readonly string[] = [MeshHeaders.to, MeshHeaders.workflowId, MeshHeaders.contentChecksum];
/** Field lengths MESH allows (as the reference implementation); longer values are refused rather than truncated. */
const MAX_LENGTHS: Readonly<Record<string, number>> = {
  [MeshHeaders.to]: 100,
  [MeshHeaders.workflowId]: 300,
  [MeshHeaders.chunkRange]: 20,
  [MeshHeaders.subject]: 500,
  [MeshHeaders.localId]: 300,
  [MeshHeaders.partnerId]: 500,
  [MeshHeaders.fileName]: 300,
  [MeshHeaders.contentChecksum]: 100,
  [MeshHeaders.contentType]: 100,
};
/** MESH's header names by the lower case Node gives them in. */
const CANONICAL_NAMES: ReadonlyMap<string, string> = new Map(Object.values(MeshHeaders).map((name) => [name.toLowerCase(), name]));
/** What MESH lets a checksum be made of: `sha256:<hex>`, `md5:...`, UUID-like values. */
const CHECKSUM_PATTERN = /^[A-Za-z0-9\s:/-]*$/;

function header(headers: IncomingHttpHeaders, name: string): string {
  const value = headers[name.toLowerCase()];
  return (Array.isArray(value) ? value.join(',') : (value ?? '')).trim();
}

/** mex-* values with control characters, or addresses that look like URLs, make the control file malformed. */
function assertWellFormed(headers: IncomingHttpHeaders): void {
  const malformed = Object.entries(headers)
    .filter(([name]) => name.startsWith('mex-'))
    .filter(([name, value]) => {
      const text = Array.isArray(value) ? value.join(',') : (value ?? '');
      const canonical = CANONICAL_NAMES.get(name) ?? name;
      return (
        CONTROL_CHARACTERS.test(text) ||
        (URL_CHECKED.includes(canonical) && URL_LIKE.test(text.trim())) ||
        text.length > (MAX_LENGTHS[canonical] ?? 1000)
      );
    })
    .map(([name]) => name);
  if (malformed.length > 0) throw new BadRequestError(MeshErrorCodes.malformedControlFile, malformed.join(', '));
  if (!CHECKSUM_PATTERN.test(header(headers, MeshHeaders.contentChecksum))) {
    throw new BadRequestError(MeshErrorCodes.invalidChecksum, header(headers, MeshHeaders.contentChecksum));
  }
}

/**
 * The chunk range header of a send or upload; defaults to 1:1. `messageId`: the message a
 * chunk upload is for, named in its refusal as in the upload's others (a send's has none yet).
 */
export function chunkRange(headers: IncomingHttpHeaders, messageId?: string): { readonly chunk: number; readonly total: number } {
  const raw = header(headers, MeshHeaders.chunkRange);
  if (raw === '') return { chunk: 1, total: 1 };
  const range = parseChunkRange(raw);
  if (!range) throw new SendRejectedError(MeshErrorCodes.invalidHeaderChunks, { detail: raw, messageId });
  return range;
}

/** The body of a send or chunk upload (of `messageId`, named in its refusals), as it arrives. */
export function chunkBody(headers: IncomingHttpHeaders, stream: Readable, messageId?: string): ChunkBody {
  // Node undoes chunked framing and no other transfer coding: a body sent `gzip, chunked` would be stored still gzipped as the payload.
  const transferCodings = header(headers, 'transfer-encoding').toLowerCase();
  if (transferCodings !== '' && transferCodings.split(',').some((coding) => coding.trim() !== 'chunked')) {
    throw new MeshError(501, MeshErrorCodes.unsupportedTransferCoding, { detail: transferCodings, messageId, clientCaused: true });
  }
  const encoding = header(headers, 'content-encoding').toLowerCase();
  if (encoding !== '' && encoding !== 'gzip') {
    throw new MeshError(422, MeshErrorCodes.unsupportedContentEncoding, { detail: encoding, messageId });
  }
  const length = header(headers, 'content-length');
  const contentLength = length === '' ? undefined : Number(length);
  // Node has checked it is digits; '00' is empty too.
  if (contentLength === 0) throw new SendRejectedError(MeshErrorCodes.missingDataFile, { messageId });
  return { stream, contentLength, contentEncoding: encoding };
}

/**
 * What a mex-Content-Compressed or -Encrypted flag counts as set by: MESH sends `Y`, and its
 * sandbox reads the flags as booleans (`true`, `yes`, `1`, ...). A recipient would take an
 * encrypted payload for plain text were a `true` dropped. Served back as `Y`.
 */
const TRUE_FLAGS = new Set(['y', 'yes', 't', 'true', 'on', '1']);

/** Reads and validates the headers of `POST /outbox`. */
export function sendMetadata(headers: IncomingHttpHeaders): OutgoingMetadata & { readonly chunk: number } {
  assertWellFormed(headers);
  const to = header(headers, MeshHeaders.to);
  if (to === '') throw new BadRequestError(MeshErrorCodes.missingToAddress);
  // Another value (mailboxIdOf) goes as it is, and matches no mailbox.
  const recipient = mailboxIdOf(to) ?? to;
  const workflowId = header(headers, MeshHeaders.workflowId);
  if (workflowId === '') throw new BadRequestError(MeshErrorCodes.malformedControlFile, MeshHeaders.workflowId);
  const range = chunkRange(headers);
  if (range.chunk !== 1) throw new SendRejectedError(MeshErrorCodes.invalidHeaderChunks, { detail: `${range.chunk}:${range.total}` });
  const flag = (name: string): boolean => TRUE_FLAGS.has(header(headers, name).trim().toLowerCase());
  // A plain Content-Type stands in for mex-Content-Type and goes back out as both: the same limit.
  const contentType = header(headers, MeshHeaders.contentType) || header(headers, 'content-type');
  if (contentType.length > MAX_LENGTHS[MeshHeaders.contentType]!) throw new BadRequestError(MeshErrorCodes.malformedControlFile, 'content-type');
  return {
    chunk: range.chunk,
    recipient,
    workflowId,
    subject: header(headers, MeshHeaders.subject),
    localId: header(headers, MeshHeaders.localId),
    partnerId: header(headers, MeshHeaders.partnerId),
    fileName: header(headers, MeshHeaders.fileName),
    checksum: header(headers, MeshHeaders.contentChecksum),
    contentType,
    compressed: flag(MeshHeaders.contentCompressed),
    encrypted: flag(MeshHeaders.contentEncrypted),
    totalChunks: range.total,
  };
}

/**
 * What tells one send from another beyond its path: its MESH and content headers, in a stable
 * order. A client's identical retry repeats them all; a token reused for another message
 * (another local id, subject, recipient or length) does not.
 */
export function sendIdentity(headers: IncomingHttpHeaders): string {
  return Object.keys(headers)
    .filter((name) => name.startsWith('mex-') || name.startsWith('content-'))
    .sort()
    .map((name) => `${name}=${header(headers, name)}`)
    .join('\n');
}
