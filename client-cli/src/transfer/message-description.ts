import { basename } from 'node:path';
import type { MessageMetadata } from '../client/message-metadata.ts';
import { printableJson } from '../client/untrusted-text.ts';
import { formatChecksum } from './checksum.ts';
import type { DownloadResult } from './download.ts';

/** A non-delivery report: it has no payload, only what its headers say. */
export function isReport(metadata: MessageMetadata): boolean {
  return metadata.messageType === 'REPORT';
}

/**
 * What a saved message's `<ID>.json` holds: who sent it, workflow, subject, ..., the payload
 * file (`download`; undefined for a report, which has none) and every `mex-` header.
 */
function describeMessage(metadata: MessageMetadata, messageId: string, download: DownloadResult | undefined): Record<string, unknown> {
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
    // A non-delivery report is about another message: which, and why, at the top where a program looks.
    ...(isReport(metadata)
      ? {
          linkedMessageId: metadata.linkedMessageId ?? null,
          statusCode: metadata.statusCode ?? null,
          statusDescription: metadata.statusDescription ?? null,
        }
      : {}),
    mexHeaders,
  };
}

/**
 * The JSON text of describeMessage, as a file holds it. JSON.stringify escapes C0 controls but
 * writes DEL and the C1 controls as they are, and a sender's header may carry them (HTTP
 * carries Latin-1): printableJson escapes those too, the file is the same JSON, and `cat` of it
 * sends a terminal no control sequence (U+009B is CSI to xterm).
 */
export function messageDescriptionText(metadata: MessageMetadata, messageId: string, download: DownloadResult | undefined): string {
  return `${printableJson(describeMessage(metadata, messageId, download), 2)}\n`;
}
