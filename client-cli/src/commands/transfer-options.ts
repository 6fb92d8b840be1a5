import { InvalidArgumentError } from 'commander';
import { headerValue } from '../client/header-values.ts';
import { formatBytes, parseByteSize, SIZE_FORMS, DEFAULT_CHUNK_SIZE } from '../transfer/chunking.ts';
import { DEFAULT_MIN_FREE_BYTES } from '../transfer/disk-room.ts';

/**
 * Retries per request for send and download: more than other commands get (2), as losing a
 * multi-GB transfer to one dropped connection or busy server is what hurts. With the
 * backoff (250 ms, tripled each time) five retries span about half a minute.
 */
export const DEFAULT_TRANSFER_RETRIES = 5;
const MAX_RETRIES = 100;

export const CHUNK_SIZE_HELP = `bytes of the file per chunk, e.g. 20MiB or 100MB (default ${formatBytes(DEFAULT_CHUNK_SIZE)}); a larger file goes in several chunks`;
/** --retries, for a command that sends (whose one-chunk sends repeat only what the server cannot have acted on, or what meshbox answers as the first try) or only fetches. */
export function retriesHelp(sends: boolean): string {
  const sendRule = sends ? '; a one-chunk send, with its token, only when the server cannot have acted (429, 503, connection refused) or, when it may have, to meshbox' : '';
  return `retries of a failed request (dropped connection, 429, 5xx but 501${sendRule}), with growing waits (default ${DEFAULT_TRANSFER_RETRIES})`;
}
export const QUIET_HELP = 'no progress bar or notes on stderr';

/** commander parser for --chunk-size. */
export function chunkSizeOption(value: string): number {
  const bytes = parseByteSize(value);
  if (bytes === undefined) throw new InvalidArgumentError(`Give ${SIZE_FORMS}.`);
  return bytes;
}

export const MIN_FREE_HELP = `free space a download leaves on its disk: a message that would leave less is not saved, e.g. 5GiB; 0 for no check (default ${formatBytes(DEFAULT_MIN_FREE_BYTES)})`;

/** commander parser for --min-free: a size, or 0. */
export function minFreeOption(value: string): number {
  if (/^\s*0+\s*$/.test(value)) return 0;
  const bytes = parseByteSize(value);
  if (bytes === undefined) throw new InvalidArgumentError(`Give ${SIZE_FORMS}, or 0 for no check.`);
  return bytes;
}

export const WORKFLOW_FILTER_HELP =
  "only messages of these workflows, as MESH's inbox filter: X exactly, X* beginning with X, *X* containing X; ! before any: all but those";

/** commander parser for a value that may not be empty (`--workflow "$UNSET"`): one that is would ask something else of the server, every workflow or another path. */
export function nonEmptyOption(what: string): (value: string) => string {
  return (value) => {
    if (value.trim() === '') throw new InvalidArgumentError(`Give ${what}.`);
    return value;
  };
}

/** --workflow of inbox and receive: an empty filter would select every workflow, another receiver's results among them. */
export const workflowFilterOption = nonEmptyOption('a workflow filter, e.g. PATH_TEST_RESULTS (an empty one would select every workflow)');

export const DEFAULT_INTERVAL_SECONDS = 60;
export const INTERVAL_HELP = 'seconds between polls with --watch (1 to 86400)';

/** commander parser for --interval: whole seconds, at least one (polling faster only loads the server). */
export function intervalOption(value: string): number {
  const seconds = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || seconds < 1 || seconds > 86_400) {
    throw new InvalidArgumentError('Give a whole number of seconds from 1 to 86400, e.g. 60.');
  }
  return seconds;
}

/** commander parser for a value that goes out as a MESH header (--to, --workflow, --subject, ...), refused before a file is touched. */
export function headerValueOption(value: string): string {
  const sent = headerValue(value);
  if (sent === undefined) {
    throw new InvalidArgumentError('Give Latin-1 text without line breaks or other control characters (it goes out as a MESH header).');
  }
  return sent;
}

/** commander parser for --retries. */
export function retriesOption(value: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) > MAX_RETRIES) {
    throw new InvalidArgumentError(`Give a whole number from 0 to ${MAX_RETRIES}.`);
  }
  return Number(value);
}

/** A file argument as a shell would need it, for a command line we suggest. */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}
