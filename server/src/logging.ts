import { type DestinationStream, type Logger, pino } from 'pino';

/** The server's logger: JSON lines at `level`, errors logged without the Redis command arguments they carry, and cut where long. */
export function createServerLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, serializers: { err: errorForLog } };
  return destination ? pino(options, destination) : pino(options);
}

/** What of a client's text a log line keeps: a 30 KB path on every request would fill the log's disk (refused requests are logged too). */
const MAX_LOGGED_TEXT = 256;

export function loggedText(text: string, most = MAX_LOGGED_TEXT): string {
  return text.length > most ? `${text.slice(0, most)}… (${text.length} characters)` : text;
}

/**
 * An error's message may carry a client's text (a refusal's detail names the header it refused):
 * cut, or a client could write three times its headers' size into the log with every request.
 * Longer than a path's, as a server fault's own message may say much.
 */
const MAX_LOGGED_ERROR_TEXT = 1024;
/** A stack is its message and then its frames: these are kept whole. */
const MAX_LOGGED_STACK = 8192;

/**
 * Errors as logged. ioredis attaches the command that failed, with every argument, to its error:
 * for a send that Redis refused (out of memory, a read-only replica after a failover), the
 * message's record and payload, patient data that has no place in a log. The command's name is
 * kept. And an error's text is cut (MAX_LOGGED_ERROR_TEXT).
 */
function errorForLog(error: unknown): unknown {
  const serialized: unknown = pino.stdSerializers.err(error as Error);
  if (serialized !== error) tidy(serialized, Object.getPrototypeOf(serialized) as object);
  return serialized;
}

/** In the serializer's own objects (the error, and errors it holds): its copies are changed, never the error's. */
function tidy(value: unknown, serializedError: object): void {
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== serializedError) return;
  const fields = value as Record<string, unknown>;
  if (typeof fields.command === 'object' && fields.command !== null) fields.command = { name: (fields.command as { name?: unknown }).name };
  const { message, stack, detail } = fields;
  if (typeof message === 'string' && message.length > MAX_LOGGED_ERROR_TEXT) {
    fields.message = loggedText(message, MAX_LOGGED_ERROR_TEXT);
    // A function, not a string: `$'` and `$&` in a client's text are no replacement patterns.
    const cut = fields.message as string;
    if (typeof stack === 'string') fields.stack = stack.replace(message, () => cut);
  }
  if (typeof fields.stack === 'string') fields.stack = loggedText(fields.stack, MAX_LOGGED_STACK);
  if (typeof detail === 'string') fields.detail = loggedText(detail, MAX_LOGGED_ERROR_TEXT);
  for (const inner of Object.values(fields)) {
    for (const item of Array.isArray(inner) ? inner : [inner]) tidy(item, serializedError);
  }
}
