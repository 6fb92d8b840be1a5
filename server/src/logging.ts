import { type DestinationStream, type Logger, pino } from 'pino';

/** The server's logger: JSON lines at `level`, errors logged without the Redis command arguments they carry. */
export function createServerLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, serializers: { err: errorWithoutCommandArguments } };
  return destination ? pino(options, destination) : pino(options);
}

/**
 * ioredis attaches the command that failed, with every argument, to its error: for a send that
 * Redis refused (out of memory, a read-only replica after a failover), the message's record and
 * payload, patient data that has no place in a log. The command's name is kept.
 */
function errorWithoutCommandArguments(error: unknown): unknown {
  const serialized: unknown = pino.stdSerializers.err(error as Error);
  if (serialized !== error) dropCommandArguments(serialized, Object.getPrototypeOf(serialized) as object);
  return serialized;
}

/** In the serializer's own objects (the error, and errors it holds): its copy of the command is replaced, never the error's. */
function dropCommandArguments(value: unknown, serializedError: object): void {
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== serializedError) return;
  const fields = value as Record<string, unknown>;
  if (typeof fields.command === 'object' && fields.command !== null) fields.command = { name: (fields.command as { name?: unknown }).name };
  for (const inner of Object.values(fields)) {
    for (const item of Array.isArray(inner) ? inner : [inner]) dropCommandArguments(item, serializedError);
  }
}
