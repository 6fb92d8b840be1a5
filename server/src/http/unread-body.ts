import type { IncomingMessage, ServerResponse } from 'node:http';

/** How long the rest of a refused request's body may pause before the server stops reading it and closes its connection. */
export const UNREAD_BODY_PAUSE_MS = 10_000;

/**
 * Keeps the connection of a request refused before its body was read: the refusal is answered
 * at once, and what is left of the body is read and discarded after it. A client that sends its
 * whole body before it reads an answer (Python's requests, which NHS's mesh-client uses) so
 * finds its upload taken and the refusal waiting, where a connection closed under its upload
 * gave it an SSL EOF (then retries, each refused alike) and never the refusal; a client that
 * reads as it writes (Node's, curl) has the refusal at once; the handler is done with it.
 *
 * Returns whether the connection may stay open: false for a body declared over `maxBytes`, one
 * cut off, or one another reader holds (flowing to it, or paused by it): the answer must close
 * the connection, which then takes what the client still sends for CLOSING_LINGER_MS after the
 * answer (discarded) before it closes (one cut off is closed already). A body read this way that grows past `maxBytes` or pauses
 * for `pauseMs` is read no further, and its connection is closed once the answer has gone: no
 * request can follow a body left unfinished. (Node's parser knows where a body ends, so what a
 * handler read of it first does not matter.)
 */
export function discardBodyAfterAnswer(request: IncomingMessage, response: ServerResponse, maxBytes: number, pauseMs = UNREAD_BODY_PAUSE_MS): boolean {
  if (request.complete) return true;
  if (request.destroyed) return false;
  const declared = request.headers['content-length'];
  if (request.readableFlowing !== null || (declared !== undefined && Number(declared) > maxBytes)) {
    lingerBeforeClosing(request);
    return false;
  }
  let bytes = 0;
  let pause: NodeJS.Timeout | undefined;
  const stop = (): void => {
    clearTimeout(pause);
    request.off('data', onData).off('end', stop).off('close', stop);
  };
  const giveUp = (): void => {
    stop();
    request.pause();
    closeOnceAnswered(request, response);
  };
  const waitForMore = (): void => {
    clearTimeout(pause);
    pause = setTimeout(giveUp, pauseMs).unref();
  };
  const onData = (part: Buffer): void => {
    bytes += part.length;
    if (bytes > maxBytes) giveUp();
    else waitForMore();
  };
  request.on('data', onData).once('end', stop).once('close', stop);
  waitForMore();
  return true;
}

/** How long a connection closed under a body not read whole still takes (and discards) what its client sends after the answer. */
export const CLOSING_LINGER_MS = 2000;

/**
 * Has the connection, which the answer's `Connection: close` ends, take what the client still
 * sends for a while after the answer before it closes: closed with bytes unread, a connection is
 * reset, and a client still writing (a chunk over the limit, refused as it began to arrive) loses
 * the answer waiting in its socket with the reset, and reports a broken pipe instead of the refusal.
 */
function lingerBeforeClosing(request: IncomingMessage, ms = CLOSING_LINGER_MS): void {
  const { socket } = request;
  // Node closes a `Connection: close` answer's socket with destroySoon once the answer has gone (its unread body dumped).
  socket.destroySoon = () => {
    socket.end();
    const closing = setTimeout(() => socket.destroy(), ms).unref();
    socket.once('close', () => clearTimeout(closing));
  };
}

function closeOnceAnswered(request: IncomingMessage, response: ServerResponse): void {
  // The response lets go of its socket once it is done; the request keeps it.
  const { socket } = request;
  if (response.writableFinished || response.destroyed) socket.destroy();
  else response.once('close', () => socket.destroy());
}
