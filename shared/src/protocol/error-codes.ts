/** What MESH calls the phase in which an error happened. */
export type MeshEvent = 'TRANSFER' | 'SEND' | 'COLLECT' | 'RECEIVE' | 'AUTHENTICATION';

export interface MeshErrorCode {
  readonly event: MeshEvent;
  readonly code: string;
  readonly description: string;
}

/**
 * The MESH error catalogue (codes from the DTS spec, as the reference implementation uses
 * them). Clients match on `code`, so these strings are part of the wire protocol.
 */
export const MeshErrorCodes = {
  missingDataFile: { event: 'COLLECT', code: '02', description: 'Data file is missing or inaccessible.' },
  malformedControlFile: { event: 'TRANSFER', code: '06', description: 'Malformed control file' },
  invalidFromAddress: { event: 'SEND', code: '07', description: 'Invalid From Address in the control file' },
  missingToAddress: { event: 'SEND', code: '08', description: 'TO_DTS missing' },
  invalidVersion: { event: 'SEND', code: '09', description: 'Invalid version of the control file' },
  invalidMessageType: { event: 'SEND', code: '11', description: 'Invalid Message Type for the transfer' },
  unregisteredRecipient: { event: 'SEND', code: '12', description: 'Unregistered to address' },
  undeliveredMessage: { event: 'SEND', code: '14', description: 'Message not collected by recipient after {days} days' },
  undeliveredMailboxDeactivated: {
    event: 'SEND',
    code: '14',
    description: 'Message was not collected as the mailbox is deactivated',
  },
  /**
   * meshbox's status detail for a message waiting in an inbox whose payload object storage lost
   * (a bucket lifecycle rule, a restore from an older snapshot, an object deleted): undeliverable
   * at once, and reported to its sender, who has nothing else to act on. MESH has no such case;
   * its code is that of every non-delivery report, which MESH clients know one by.
   */
  payloadLost: { event: 'SEND', code: '14', description: 'Message payload lost in storage; send it again' },
  /**
   * meshbox's status detail for an upload it gave up on (never completed in time): tracking
   * reports it with status `error`, and `dispatch` tells it by these from a message that failed
   * after it was accepted (MESH's `error`), which it must not send again.
   */
  uploadDiscarded: { event: 'TRANSFER', code: '14', description: 'Upload not completed in time; the message was discarded' },
  workflowNotRegistered: { event: 'SEND', code: '17', description: 'Workflow ID not registered for mailbox' },
  invalidExpiryPeriod: { event: 'SEND', code: '19', description: 'Invalid expiry period' },
  messageDoesNotExist: { event: 'RECEIVE', code: '20', description: 'Message does not exist' },
  tooManyMailboxMatches: { event: 'SEND', code: 'EPL-150', description: 'Multiple mailboxes matches' },
  noMailboxMatches: { event: 'SEND', code: 'EPL-151', description: 'No mailbox matched' },
  messageGone: { event: 'SEND', code: 'Message already accepted', description: 'Message no longer available for download' },
  invalidHeaderChunks: {
    event: 'SEND',
    code: 'InvalidHeaderChunks',
    description: 'Invalid chunk values sent in mex-Chunk-Range header',
  },
  unsupportedContentEncoding: {
    event: 'SEND',
    code: 'UnsupportedContentEncoding',
    description: 'Unsupported content encoding',
  },
  contentEncodingChanged: {
    event: 'SEND',
    code: 'UnsupportedContentEncoding',
    description: 'cannot change content encoding',
  },
  invalidChecksum: { event: 'SEND', code: 'Invalid checksum', description: 'Invalid checksum' },
  // meshbox's own codes for refusals MESH signals by HTTP status alone.
  authenticationFailed: { event: 'AUTHENTICATION', code: '403', description: 'Authentication failed' },
  invalidAcceptHeader: { event: 'TRANSFER', code: '400', description: 'Unsupported Accept header' },
  invalidRequest: { event: 'TRANSFER', code: '400', description: 'Invalid request' },
  chunkOutOfRange: { event: 'SEND', code: '406', description: 'Chunk number is beyond the message\'s chunk count' },
  requestTimeout: { event: 'TRANSFER', code: '408', description: 'Request timeout: the body stopped arriving' },
  payloadTooLarge: { event: 'SEND', code: '413', description: 'Payload too large' },
  messageLocked: { event: 'SEND', code: '423', description: 'Message upload already complete' },
  uploadAbandoned: { event: 'SEND', code: '423', description: 'Message upload not completed in time; the message was discarded: send it again' },
  multipleLocalIdMatches: { event: 'SEND', code: '300', description: 'Multiple messages found for local id' },
  notFound: { event: 'TRANSFER', code: '404', description: 'Not found' },
  methodNotAllowed: { event: 'TRANSFER', code: '405', description: 'Method not allowed' },
  expectationFailed: { event: 'TRANSFER', code: '417', description: 'Expectation not supported: only 100-continue' },
  tooManyRequests: { event: 'TRANSFER', code: '429', description: 'Too many requests; retry later' },
  unsupportedTransferCoding: { event: 'TRANSFER', code: '501', description: 'Unsupported transfer coding: only chunked' },
  serviceUnavailable: { event: 'TRANSFER', code: '503', description: 'Service unavailable' },
  internalError: { event: 'TRANSFER', code: '500', description: 'Internal server error' },
} as const satisfies Record<string, MeshErrorCode>;
