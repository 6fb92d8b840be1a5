import { compactUtcSeconds, MeshHeaders } from '../../../../shared/src/protocol/index.ts';
import type { MessageRecord } from '../../store/messages.ts';

/** The file name a message goes by: the sender's, or MESH's default `{id}.dat` when it gave none. */
export function fileNameOf(message: MessageRecord): string {
  return message.fileName || `${message.id}.dat`;
}

/**
 * The mex-* headers of a download or HEAD, empty values left out, named in lower case as MESH and
 * its sandbox send them: header names are case-insensitive, but a client may look one up by its
 * exact name (NHS's .NET client asks for `mex-chunk-range`, and cannot download a chunked message
 * without it).
 */
export function messageHeaders(message: MessageRecord, chunkNumber: number): Record<string, string> {
  const isReport = message.type === 'REPORT';
  const headers: Record<string, string> = {
    [MeshHeaders.messageId]: message.id,
    [MeshHeaders.messageType]: message.type,
    [MeshHeaders.from]: isReport ? '' : message.sender,
    [MeshHeaders.to]: message.recipient,
    [MeshHeaders.workflowId]: message.workflowId,
    [MeshHeaders.localId]: message.localId,
    [MeshHeaders.subject]: message.subject,
    [MeshHeaders.fileName]: fileNameOf(message),
    [MeshHeaders.partnerId]: message.partnerId,
    [MeshHeaders.contentChecksum]: message.checksum,
    [MeshHeaders.contentType]: message.contentType,
    // The sender's own flag (the payload itself is compressed), passed through; a gzip Content-Encoding is only for
    // the journey and undone by every client, so saying Y for it would have recipients gunzip plain content.
    [MeshHeaders.contentCompressed]: message.compressed ? 'Y' : '',
    [MeshHeaders.contentEncrypted]: message.encrypted ? 'Y' : '',
    [MeshHeaders.chunkRange]: isReport ? '1:0' : `${chunkNumber}:${message.totalChunks}`,
    [MeshHeaders.totalChunks]: String(message.totalChunks),
    [MeshHeaders.linkedMessageId]: message.linkedMessageId,
    [MeshHeaders.addressType]: 'ALL',
    [MeshHeaders.version]: '1.0',
    [MeshHeaders.statusCode]: message.statusDetail.code,
    [MeshHeaders.statusEvent]: message.statusDetail.event,
    [MeshHeaders.statusDescription]: message.statusDetail.description,
    [MeshHeaders.statusSuccess]: message.statusDetail.success ? 'SUCCESS' : 'ERROR',
    // The status these headers give is the transfer's (or an error's), dated as MESH's sandbox dates
    // it: an acknowledgement since changes neither (a message is downloadable until purged).
    [MeshHeaders.statusTimestamp]: compactUtcSeconds(message.acceptedAt ?? message.statusAt),
  };
  return Object.fromEntries(Object.entries(headers).filter(([, value]) => value !== '').map(([name, value]) => [name.toLowerCase(), value]));
}
