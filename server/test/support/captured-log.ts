import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { createServerLogger } from '../../src/logging.ts';

/** A logged line, parsed. */
export type LogLine = Record<string, unknown> & { readonly msg: string };

/** The server's logger at `info`, writing into `lines` instead of stdout. */
export function capturedLogger(): { readonly logger: Logger; readonly lines: LogLine[] } {
  const lines: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as LogLine);
      done();
    },
  });
  return { logger: createServerLogger('info', destination), lines };
}
