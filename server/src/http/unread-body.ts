import type { IncomingMessage } from 'node:http';

/** How long the rest of a refused request's body may pause before the server stops waiting for it. */
export const UNREAD_BODY_PAUSE_MS = 10_000;

/**
 * Reads and discards what is left of a request body that its handler refused before reading,
 * so that the refusal can be answered on a connection still open: a client that sends its
 * whole body before it reads an answer (Python's requests, which NHS's mesh-client uses) met the
 * connection closed under its upload (an SSL EOF, then its retries, each refused alike) and
 * never saw why. Resolves true once the body has ended (the connection may then carry more
 * requests); false, leaving the rest unread, for a body over `maxBytes` (declared or as it
 * comes), one that pauses for `pauseMs`, one that another reader holds (flowing to it, or
 * paused by it) or one cut off: the connection must close after the answer. (Node's parser
 * knows where a body ends, so what a handler read of it first does not matter.)
 */
export function discardUnreadBody(request: IncomingMessage, maxBytes: number, pauseMs = UNREAD_BODY_PAUSE_MS): Promise<boolean> {
  if (request.complete) return Promise.resolve(true);
  if (request.destroyed || request.readableFlowing !== null) return Promise.resolve(false);
  const declared = request.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) return Promise.resolve(false);
  return new Promise((resolve) => {
    let bytes = 0;
    let pause: NodeJS.Timeout | undefined;
    const waitForMore = (): void => {
      clearTimeout(pause);
      pause = setTimeout(() => finish(false), pauseMs);
    };
    const onData = (part: Buffer): void => {
      bytes += part.length;
      if (bytes > maxBytes) finish(false);
      else waitForMore();
    };
    const onEnd = (): void => finish(true);
    const onClose = (): void => finish(request.complete);
    const finish = (ended: boolean): void => {
      clearTimeout(pause);
      request.off('data', onData).off('end', onEnd).off('close', onClose);
      if (!ended) request.pause();
      resolve(ended);
    };
    request.on('data', onData).once('end', onEnd).once('close', onClose);
    waitForMore();
  });
}
