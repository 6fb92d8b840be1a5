import { isThrottlingError } from '@smithy/core/retry';

/**
 * Whether object storage answered a request by shedding load: it is there, and serves again
 * once asked less. The SDK's own test (isThrottlingError: 429, or a code such as SlowDown) is
 * taken, with any 503 besides: S3 answers 503 for SlowDown and ServiceUnavailable alike ("reduce
 * your request rate"), and a HEAD's answer carries no body, so a HeadBucket throttled is only
 * its status (the SDK names it Unknown, and retries it as any 5xx).
 */
export function isObjectStorageThrottling(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return isThrottlingError(error as Parameters<typeof isThrottlingError>[0]) || statusOf(error) === 503;
}

/** The HTTP status object storage answered a failed request with; undefined when it did not answer (refused, cut off, silent). */
export function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}
