import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import { MeshErrorCodes } from '../../../shared/src/protocol/index.ts';
import { AcceptedWithoutIdError, AnswerCutOffError, CHUNK_SIZE_ADVICE, MeshClientError, refusesChunkSize, refusesTheRequest } from '../client/errors.ts';
import { headerValue } from '../client/header-values.ts';
import { DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_SIZE_WORD, formatBytes } from '../transfer/chunking.ts';
import { ChunkUploadError, ContentEncodingMismatchError, FileChangedError, mayHaveBeenSent, resumeFile, type UploadResult } from '../transfer/upload.ts';
import { IN_DOUBT_MS } from '../transfer/send-by-local-id.ts';
import { sendFileFindingItAgain, StillInDoubtError } from '../transfer/send-found-again.ts';
import { type CliContext, errorLine } from './context.ts';
import { messageIdArgument } from './message-id-argument.ts';
import { interruption, stopSignal } from './interruption.ts';
import {
  CHUNK_SIZE_HELP,
  chunkSizeOption,
  DEFAULT_TRANSFER_RETRIES,
  headerValueOption,
  QUIET_HELP,
  retriesHelp,
  retriesOption,
  shellWord,
} from './transfer-options.ts';

interface SendFlags {
  readonly to?: string;
  readonly workflow?: string;
  readonly subject?: string;
  readonly localId?: string;
  readonly fileName?: string;
  readonly chunkSize?: number;
  readonly gzip?: boolean;
  readonly checksum?: boolean;
  readonly resume?: string;
  readonly retries?: number;
  readonly quiet?: boolean;
  readonly json?: boolean;
}

/**
 * Options a printed command leaves out with their values: --resume (added anew), and secrets
 * (the profile or MESHBOX_* must give them).
 */
const LEFT_OUT_OPTIONS = new Set(['--resume', '--password', '--shared-key']);

/**
 * The command that finishes this send if it is interrupted: what the user typed (connection
 * settings, chunk size and all), plus --resume, secrets left out; `gzip` given, with --gzip
 * or without it whatever was typed.
 */
function resumeCommand(messageId: string, typed: readonly string[], gzip?: boolean): string {
  const words: string[] = [];
  for (let i = 0; i < typed.length; i += 1) {
    const [name = '', inline] = (typed[i] ?? '').split(/=(.*)/s, 2);
    if (LEFT_OUT_OPTIONS.has(name)) {
      if (inline === undefined) i += 1;
      continue;
    }
    words.push(shellWord(typed[i] ?? ''));
  }
  // Options go before a `--`, after which every word is a file name.
  const end = words.includes('--') ? words.indexOf('--') : words.length;
  const options = words.slice(0, end).filter((word) => gzip === undefined || word !== '--gzip');
  return ['meshbox', ...options, '--resume', shellWord(messageId), ...(gzip ? ['--gzip'] : []), ...words.slice(end)].join(' ');
}

/**
 * The command line as typed, with `--chunk-size` (the default) added when a send gave none: a
 * printed resume command must carry it, since against a server whose tracking gives no sizes of
 * the chunks it holds (MESH) a resume is made only with the chunk size given (see resumeFile).
 * A resume's is left as typed: the default added there, a resume of a first run with another
 * chunk size (making as many chunks) would be made with it, past that very check.
 */
export function typedWithChunkSize(typed: readonly string[], flags: { readonly chunkSize?: number | undefined; readonly resume?: string | undefined }): readonly string[] {
  if (flags.chunkSize !== undefined || flags.resume !== undefined) return typed;
  // Options go before a `--`, after which every word is a file name.
  const end = typed.includes('--') ? typed.indexOf('--') : typed.length;
  return [...typed.slice(0, end), '--chunk-size', DEFAULT_CHUNK_SIZE_WORD, ...typed.slice(end)];
}

/**
 * What an upload cut short left behind, and the command that finishes it. `mayHaveCompleted`:
 * the last chunk may have been stored (its answer lost, and tracking could not tell), completing
 * the message: the same command says so rather than send anything again.
 */
function incompleteNote(messageId: string, typed: readonly string[], mayHaveCompleted: boolean): string {
  const state = mayHaveCompleted
    ? `message ${messageId} may be complete already (only that answer lost), or is incomplete: do not send the file again; the server keeps its chunks for a while: finish it (or learn that it is complete) with`
    : `message ${messageId} is incomplete; the server keeps its chunks for a while: finish it with`;
  return `${state}\n  ${resumeCommand(messageId, typed)}`;
}

/**
 * Before a one-chunk message whose answer was lost is sent again: how to find out whether it
 * arrived (a second copy would be delivered too).
 */
function howToCheckDelivery(flags: SendFlags): string {
  return flags.localId === undefined
    ? 'check with the recipient (give --local-id next time, and meshbox track --local-id <it> will tell)'
    : `check with\n  meshbox track --local-id ${shellWord(flags.localId)}`;
}

/** What tracking said of a one-chunk send in doubt, and how to check (`purpose`: 'before sending it again', say). */
function stillInDoubt(error: StillInDoubtError, purpose: string): string {
  const localId = shellWord(error.localId);
  return error.found === 'several'
    ? `several messages carry local id ${localId}, so tracking cannot tell which is this one: ${purpose}, check with the recipient`
    : `tracking knows no message with local id ${localId} yet, but the server may still record it (up to ${IN_DOUBT_MS / 60_000} minutes after the send): ` +
        `${purpose}, check then with\n  meshbox track --local-id ${localId}`;
}

/** A failed chunk's error, with what to do about it. */
function explained(failure: unknown, flags: SendFlags, typed: readonly string[]): unknown {
  // Refused before any chunk went: the first run's --gzip, as tracking gives it, finishes it.
  if (failure instanceof ContentEncodingMismatchError) {
    return new Error(`${failure.message}: finish it with\n  ${resumeCommand(failure.messageId, typed, failure.firstRunGzip)}`, { cause: failure });
  }
  // Tracking asked already (send --local-id): what it found says how to check.
  const error = failure instanceof StillInDoubtError ? failure.cause : failure;
  if (!(error instanceof ChunkUploadError)) return failure;
  if (mayHaveBeenSent(error)) {
    const taken = error.cause instanceof AnswerCutOffError || error.cause instanceof AcceptedWithoutIdError;
    const purpose = taken ? 'to find it' : 'before sending it again';
    const doubt = taken
      ? 'the server took the message (only its id lost): do not send it again;'
      : 'the message may have been delivered all the same (recorded before its answer was lost or went wrong):';
    const check = failure instanceof StillInDoubtError ? stillInDoubt(failure, purpose) : `${purpose}, ${howToCheckDelivery(flags)}`;
    return new Error(`${error.message}\n${doubt} ${check}`, { cause: failure });
  }
  if (refusesChunkSize(error.cause)) {
    return new Error(`${error.message}; ${CHUNK_SIZE_ADVICE}`, { cause: error });
  }
  // Chunk 1's range refused: the only thing wrong with the range this CLI sends is its count.
  if (error.chunkNumber === 1 && error.totalChunks > 1 && refusesChunkRange(error.cause)) {
    return new Error(`${error.message}; a larger --chunk-size makes fewer chunks`, { cause: error });
  }
  // Resuming with a changed file would make a garbled message: no resume hint then.
  if (error.messageId === undefined || error.cause instanceof FileChangedError) return error;
  // A resume whose --gzip is not the first run's: the server does not mix encodings in a message.
  if (changesEncoding(error.cause)) {
    const gzip = flags.gzip === true;
    return new Error(
      `${error.message}\nthe chunks of message ${error.messageId} so far went ${gzip ? 'without' : 'with'} --gzip: finish it with\n  ${resumeCommand(error.messageId, typed, !gzip)}`,
      { cause: error },
    );
  }
  // A message over the server's size limit, say: resuming sends the refused chunk again.
  if (refusesTheRequest(error.cause)) {
    return new Error(`${error.message}\nmessage ${error.messageId} cannot be finished (the server would refuse this chunk again); it stays incomplete until the server drops it`, {
      cause: error,
    });
  }
  return new Error(`${error.message}\n${incompleteNote(error.messageId, typed, error.mayHaveCompleted)}`, { cause: error });
}

function refusesChunkRange(error: unknown): boolean {
  return error instanceof MeshClientError && error.status === 417 && error.code === MeshErrorCodes.invalidHeaderChunks.code;
}

/** meshbox's refusal by its code; MESH's (as its sandbox gives it) has no code, only the same description. */
function changesEncoding(error: unknown): boolean {
  if (!(error instanceof MeshClientError) || error.status !== 417) return false;
  const refusal = MeshErrorCodes.contentEncodingChanged;
  return error.code === refusal.code || (!error.code && error.description.trim().toLowerCase() === refusal.description);
}

function resultJson(result: UploadResult, resumed: boolean): string {
  const fields: Record<string, unknown> = { messageId: result.messageId, chunks: result.totalChunks, bytes: result.bytes };
  if (resumed) Object.assign(fields, { uploadedChunks: result.uploadedChunks, status: result.status, storedChunksKnown: result.storedChunksKnown ?? true });
  return JSON.stringify(fields);
}

export function registerSendCommand(program: Command, context: CliContext): void {
  program
    .command('send')
    .description('send a file to a mailbox, in chunks streamed from disk; prints the message id (--resume finishes an interrupted send)')
    .argument('<file>', 'the file to send')
    .option('--to <mailbox>', 'recipient mailbox id (required, except with --resume)', headerValueOption)
    .option('--workflow <id>', 'workflow id, e.g. PATH_TEST_RESULTS (required, except with --resume)', headerValueOption)
    .option('--subject <text>', 'subject line', headerValueOption)
    .option('--local-id <id>', 'your own reference for the message (tracking shows it)', headerValueOption)
    .option('--file-name <name>', "file name the recipient sees (default: the file's own name)", headerValueOption)
    .option('--chunk-size <size>', CHUNK_SIZE_HELP, chunkSizeOption)
    .option('--gzip', 'gzip each chunk for the journey (Content-Encoding: gzip); the recipient gets the file as it is')
    .option('--checksum', 'read the file once first and send its sha256 (mex-Content-Checksum), which meshbox download verifies; with --resume: refuse a message without one (a resume checks the file against the checksum a message carries either way)')
    .option(
      '--resume <message_id>',
      'finish an interrupted send: upload the chunks the server lacks, or all after the first when it does not say (same file, --chunk-size and --gzip as before; against MESH give --chunk-size even if it was the default)',
      messageIdArgument,
    )
    .option('--retries <n>', retriesHelp(true), retriesOption)
    .option('--quiet', QUIET_HELP)
    .option('--json', 'print {"messageId": ..., "chunks": N, "bytes": B}')
    .addHelpText(
      'after',
      [
        '',
        'A file larger than --chunk-size goes as several chunks (MESH takes at most 100 MB per request),',
        'each read from disk as it is sent, and each retried on its own if it fails.',
        '',
        'On a terminal, stderr shows a progress bar and, for several chunks, the message id and the',
        'command to finish the send should it be interrupted. Otherwise (a pipe or file, --json,',
        '--quiet) only the result goes out, on stdout. A send that fails part-way, or that Ctrl-C,',
        'SIGTERM or SIGHUP stop (exit 130, 143 or 129), says on stderr which message it left incomplete',
        'and how to resume it.',
        'A one-chunk send whose connection breaks after it went out, or that the server answers 500 (or a',
        'gateway 502 or 504), may have been delivered. With --local-id, send asks tracking which message carries',
        'it before the send (that one is not this one) and again after such a failure: found, the message was',
        'sent (exit 0, its id printed, stderr says what failed), unless tracking reports it failed since',
        '(undeliverable, error) or in a status not known (exit 1, saying so); not found, the error says the server may still',
        'record it and how to check (meshbox track --local-id) before sending it again (exit 1). Without',
        '--local-id, the error says to check with the recipient. One whose 202 answer breaks off before the',
        'message id was delivered: the error says not to send it again.',
        'A file that changes while a chunk of it is read (its size or modification time) stops the send before',
        'that chunk is complete, so the server stores nothing garbled (exit 1: send it again once it is written).',
        'The last chunk stored whose answer was lost: tracking tells whether the message is complete, and so it is sent.',
        '',
        'meshbox send --resume <message_id> <file> asks the server which chunks it holds and uploads',
        'the others; a server whose tracking does not say (MESH: stored_chunks is meshbox\'s) gets every chunk',
        'after the first again, in order. Give the same file, --chunk-size and --gzip as the first run: the chunk count is',
        'checked, --gzip against the content encoding tracking gives, the sizes of the chunks held (meshbox\'s tracking gives',
        'them) and the content against the checksum the message carries, if any. MESH\'s tracking gives no chunk sizes, so',
        'only the chunk count checks --chunk-size, which another size can give too: a resume there needs --chunk-size given,',
        'even the default (the printed resume command carries it), and without a checksum (a first run with --checksum)',
        'warns on stderr that nothing checks the file is the first run\'s. A message already complete is checked the same way',
        '(its size too, unless --gzip), then left alone (exit 0).',
      ].join('\n'),
    )
    .action(async (file: string, flags: SendFlags, command: Command) => {
      if (flags.resume === undefined) {
        // Required unless resuming (the message has them already), so checked here, not by commander.
        if (flags.to === undefined) command.error("error: required option '--to <mailbox>' not specified");
        if (flags.workflow === undefined) command.error("error: required option '--workflow <id>' not specified");
      }
      const path = resolve(context.io.cwd, file);
      const namedAfterFile = headerValue(basename(path));
      if (flags.resume === undefined && flags.fileName === undefined && namedAfterFile === undefined) {
        command.error(`error: the file's name ${JSON.stringify(basename(path))} cannot go as a MESH header (Latin-1 only): give --file-name`);
      }
      const upload = {
        path,
        chunkSize: flags.chunkSize ?? DEFAULT_CHUNK_SIZE,
        gzip: flags.gzip === true,
        progress: context.progress(flags),
      };
      // A stop (Ctrl-C, SIGTERM, SIGHUP) ends the request in hand, and the run says what it left: on a terminal or
      // not, as a script's log is where a half-sent message must be findable.
      const stop = stopSignal(context.io);
      const typed = typedWithChunkSize(context.argv, flags);
      let started = flags.resume;
      let sending = flags.resume !== undefined;
      const result = await context
        .withClient(
          command,
          (client) =>
            flags.resume === undefined
              ? sendFileFindingItAgain(client, {
                  ...upload,
                  message: {
                    to: flags.to ?? '',
                    workflowId: flags.workflow ?? '',
                    subject: flags.subject,
                    localId: flags.localId,
                    fileName: flags.fileName ?? namedAfterFile ?? '',
                  },
                  checksum: flags.checksum === true,
                  onSending: () => {
                    sending = true;
                  },
                  onStarted: async (messageId) => {
                    started = messageId;
                  },
                  startNote: (messageId, plan) =>
                    `message ${messageId}: ${plan.totalChunks} chunks of ${formatBytes(plan.chunkSize)}; if interrupted, finish it with\n` +
                    `  ${resumeCommand(messageId, typed)}`,
                })
              : resumeFile(client, {
                  ...upload,
                  messageId: flags.resume,
                  // The file's own name, as the first run sent it when it gave no --file-name: a resume with another file of as many chunks would complete the message garbled.
                  expected: { to: flags.to, workflowId: flags.workflow, subject: flags.subject, localId: flags.localId, fileName: flags.fileName ?? namedAfterFile },
                  fileNameImplied: flags.fileName === undefined,
                  requireChecksum: flags.checksum === true,
                  chunkSizeGiven: flags.chunkSize !== undefined,
                  // Said whatever the flags, as the warning of a file changed while it went.
                  warn: (text) => context.io.stderr(`meshbox: warning: ${text}\n`),
                }),
          { retries: flags.retries ?? DEFAULT_TRANSFER_RETRIES, signal: stop },
        )
        .catch((error: unknown) => {
          if (stop.aborted) {
            throw interruption(
              stop,
              !sending
                ? 'the message was not started: nothing of it went to the server'
                : started === undefined
                  ? `the message was not started, or its first chunk's answer did not come: before sending it again, ${howToCheckDelivery(flags)}`
                  : incompleteNote(started, typed, false),
            );
          }
          throw explained(error, flags, typed);
        });

      if ('sendFailure' in result) {
        // Said whatever the flags: the log must show why a send that reported a failure is not one.
        context.io.stderr(
          `${errorLine(result.sendFailure)}; but tracking finds message ${result.messageId} with local id ` +
            `${shellWord(flags.localId ?? '')} recorded: it was sent (do not send it again)\n`,
        );
      }
      if (result.changedAfterSend) {
        // Said whatever the flags: the recipient has an older or partial copy, which someone must know.
        context.io.stderr(
          `meshbox: warning: ${file} changed while it was being sent: message ${result.messageId} holds it as it was when the send began (${result.bytes} bytes)\n`,
        );
      }
      const resumed = flags.resume !== undefined;
      if (resumed && result.uploadedChunks === 0 && !flags.json && !flags.quiet) {
        // Said whether or not stderr is a terminal: a script resuming a finished send should learn so.
        context.io.stderr(`message ${result.messageId} is already ${result.status}: nothing to upload\n`);
      } else if (resumed && result.storedChunksKnown === false) {
        context.tell(
          flags,
          `the server does not say which chunks it holds, so those after the first went again: sent ${result.uploadedChunks} of ${result.totalChunks} chunks: message ${result.messageId} is ${result.status}`,
        );
      } else if (resumed) {
        context.tell(flags, `sent the missing ${result.uploadedChunks} of ${result.totalChunks} chunks: message ${result.messageId} is ${result.status}`);
      } else if (result.totalChunks > 1) {
        context.tell(flags, `sent ${formatBytes(result.bytes)} in ${result.totalChunks} chunks`);
      }
      context.print(flags.json ? resultJson(result, resumed) : result.messageId);
    });
}
