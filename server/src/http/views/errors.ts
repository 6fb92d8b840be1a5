import type { ApiVersion } from '../../../../shared/src/protocol/index.ts';
import type { MeshError } from '../../domain/errors.ts';

/** The MESH error body: v1 camelCase fields, v2 a detail list. */
export function errorBody(error: MeshError, version: ApiVersion, internalId: string): Record<string, unknown> {
  const { event, code } = error.meshCode;
  if (version === 2) {
    return {
      message_id: error.messageId ?? null,
      internal_id: internalId,
      detail: [{ event, code, msg: error.message }],
    };
  }
  return {
    messageID: error.messageId ?? null,
    errorEvent: event,
    errorCode: code,
    errorDescription: error.message,
  };
}
