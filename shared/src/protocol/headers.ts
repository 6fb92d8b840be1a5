/**
 * MESH header names in their canonical spelling. HTTP header names are case-insensitive;
 * Node hands incoming names over in lower case, so read with `.toLowerCase()` of these.
 */
export const MeshHeaders = {
  authorization: 'Authorization',
  to: 'mex-To',
  from: 'mex-From',
  workflowId: 'mex-WorkflowID',
  chunkRange: 'mex-Chunk-Range',
  totalChunks: 'mex-Total-Chunks',
  subject: 'mex-Subject',
  localId: 'mex-LocalID',
  partnerId: 'mex-PartnerID',
  fileName: 'mex-FileName',
  contentChecksum: 'mex-Content-Checksum',
  contentCompressed: 'mex-Content-Compressed',
  contentEncrypted: 'mex-Content-Encrypted',
  contentType: 'mex-Content-Type',
  messageId: 'mex-MessageID',
  messageType: 'mex-MessageType',
  linkedMessageId: 'mex-LinkedMsgID',
  addressType: 'mex-AddressType',
  version: 'mex-Version',
  statusCode: 'mex-StatusCode',
  statusEvent: 'mex-StatusEvent',
  statusDescription: 'mex-StatusDescription',
  statusSuccess: 'mex-StatusSuccess',
  statusTimestamp: 'mex-StatusTimestamp',
  clientVersion: 'mex-ClientVersion',
  osName: 'mex-OSName',
  osVersion: 'mex-OSVersion',
  osArchitecture: 'mex-OSArchitecture',
  javaVersion: 'mex-JavaVersion',
} as const;

export type MeshHeaderName = (typeof MeshHeaders)[keyof typeof MeshHeaders];

export const MESH_PATH_PREFIX = '/messageexchange';

/** `Accept` media types that select the response version. */
export const MESH_V2_MEDIA_TYPE = 'application/vnd.mesh.v2+json';
export const MESH_V1_MEDIA_TYPE = 'application/vnd.mesh.v1+json';

export type ApiVersion = 1 | 2;

/**
 * The API version a request asks for, from its Accept header: vnd.mesh.v2 → 2; plain JSON,
 * vnd.mesh.v1 or nothing → 1; a vnd.mesh value naming no version we know → undefined.
 */
export function apiVersionFromAccept(accept: string | undefined): ApiVersion | undefined {
  if (!accept) return 1;
  const meshTypes = accept
    .split(',')
    .map((part) => part.split(';')[0]!.trim().toLowerCase())
    .filter((type) => type.startsWith('application/vnd.mesh'));
  if (meshTypes.length === 0) return 1;
  if (meshTypes.includes(MESH_V2_MEDIA_TYPE)) return 2;
  if (meshTypes.includes(MESH_V1_MEDIA_TYPE)) return 1;
  return undefined;
}

/** A chunk range `n:N`; undefined unless 0 < n ≤ N. */
export function parseChunkRange(value: string): { readonly chunk: number; readonly total: number } | undefined {
  const match = /^\s*(\d{1,9})\s*:\s*(\d{1,9})\s*$/.exec(value);
  if (!match) return undefined;
  const chunk = Number(match[1]);
  const total = Number(match[2]);
  return chunk > 0 && chunk <= total ? { chunk, total } : undefined;
}
