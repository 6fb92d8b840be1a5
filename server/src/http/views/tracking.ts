import { type ApiVersion, compactUtcSeconds, v1StatusName } from '../../../../shared/src/protocol/index.ts';
import type { TrackedMessage } from '../../domain/track.ts';
import { fileNameOf } from './message-headers.ts';

/** Tracking of one message: v2 snake_case with lower-case status, v1 camelCase with title case. */
export function trackingBody({ message, storedChunks, sender, recipient, expiresAt }: TrackedMessage, version: ApiVersion): Record<string, unknown> {
  const iso = (at: Date | undefined): string | null => (at ? at.toISOString() : null);
  // meshbox registers a mailbox's ODS code, not a separate organisation: the org fields say nothing rather than guess.
  const text = (value: string | undefined): string | null => value || null;
  if (version === 2) {
    return {
      message_id: message.id,
      local_id: message.localId || null,
      workflow_id: message.workflowId,
      sender: message.sender || null,
      sender_name: text(sender?.name),
      sender_ods_code: text(sender?.odsCode),
      recipient: message.recipient,
      recipient_name: text(recipient?.name),
      recipient_ods_code: text(recipient?.odsCode),
      recipient_org_code: null,
      recipient_org_name: null,
      filename: fileNameOf(message),
      file_size: message.size,
      subject: message.subject || null,
      chunk_count: message.totalChunks,
      checksum: message.checksum || null,
      compressed: message.compressed,
      encrypted: message.encrypted,
      message_type: message.type,
      status: message.status,
      status_code: text(message.statusDetail.code),
      status_event: text(message.statusDetail.event),
      status_description: text(message.statusDetail.description),
      status_success: message.statusDetail.success,
      status_timestamp: iso(message.statusAt),
      upload_timestamp: iso(message.createdAt),
      accepted_timestamp: iso(message.acceptedAt),
      acknowledged_timestamp: iso(message.acknowledgedAt),
      expiry_time: iso(expiresAt),
      linked_message_id: message.linkedMessageId || null,
      // meshbox extension: which chunks of an uploading message are stored, their sizes as
      // stored and whether gzipped (for resuming: a client can check it splits the file the same
      // way, and say how to resume it).
      ...(storedChunks
        ? {
            stored_chunks: storedChunks.map((chunk) => chunk.number),
            stored_chunk_bytes: storedChunks.map((chunk) => chunk.size),
            content_encoding: message.contentEncoding || null,
          }
        : {}),
    };
  }
  const compact = (at: Date | undefined): string | null => (at ? compactUtcSeconds(at) : null);
  const failed = message.status === 'undeliverable' || message.status === 'error';
  return {
    messageId: message.id,
    dtsId: message.id,
    // Text fields as text, '' when empty, as MESH's sandbox renders v1 tracking (a v1 client reads them as strings).
    localId: message.localId,
    partnerId: message.partnerId,
    workflowId: message.workflowId,
    addressType: 'ALL',
    version: '1.0',
    sender: message.sender || null,
    senderName: text(sender?.name),
    senderOdsCode: text(sender?.odsCode),
    senderOrgCode: null,
    senderOrgName: null,
    recipient: message.recipient,
    recipientName: text(recipient?.name),
    meshRecipientOdsCode: text(recipient?.odsCode),
    recipientOrgCode: null,
    recipientOrgName: null,
    fileName: fileNameOf(message),
    fileSize: message.size,
    subject: message.subject,
    chunkCount: message.totalChunks,
    checksum: message.checksum,
    // Flags as Y or '', and the type title-cased, as MESH's sandbox renders v1 tracking.
    compressFlag: message.compressed ? 'Y' : '',
    // MESH's v1 schema carries the flag twice, and the transfer encoding as sent ('' when none).
    isCompressed: message.compressed ? 'Y' : '',
    encryptedFlag: message.encrypted ? 'Y' : '',
    contentEncoding: message.contentEncoding,
    messageType: message.type === 'REPORT' ? 'Report' : 'Data',
    status: v1StatusName(message.status),
    statusCode: text(message.statusDetail.code),
    statusEvent: text(message.statusDetail.event),
    statusDescription: text(message.statusDetail.description),
    statusSuccess: message.statusDetail.success ? 'SUCCESS' : 'ERROR',
    statusTimestamp: compact(message.statusAt),
    uploadTimestamp: compact(message.createdAt),
    acceptedTimestamp: compact(message.acceptedAt),
    downloadTimestamp: compact(message.acknowledgedAt) ?? '',
    expiryTime: compact(expiresAt),
    linkedMsgId: message.linkedMessageId || null,
    failureDate: failed ? compact(message.statusAt) : null,
    failureDiagnostic: failed ? message.statusDetail.description : null,
    ...(storedChunks
      ? { storedChunks: storedChunks.map((chunk) => chunk.number), storedChunkBytes: storedChunks.map((chunk) => chunk.size) }
      : {}),
  };
}
