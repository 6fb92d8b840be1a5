import type { Command } from 'commander';
import { DEFAULT_CHUNK_SIZE } from '../transfer/chunking.ts';
import { CONTROL_SUFFIX, dispatchFolder, type DispatchOptions, FAILED_FOLDER, LONE_CONTROL_MS, SENT_FOLDER, SETTLE_MS, watchFolder } from '../transfer/dispatch.ts';
import { mayHaveBeenSent } from '../transfer/upload.ts';
import { type CliContext, errorLine } from './context.ts';
import { existingFolder, type FolderPassFlags, runFolderPasses, withFolderPassOptions } from './folder-passes.ts';
import { CHUNK_SIZE_HELP, chunkSizeOption, headerValueOption } from './transfer-options.ts';

interface DispatchFlags extends FolderPassFlags {
  readonly to?: string;
  readonly workflow?: string;
  readonly subject?: string;
  readonly chunkSize?: number;
  readonly gzip?: boolean;
  readonly checksum?: boolean;
}

/** A file whose time is further ahead of this machine's clock than this is told of: it is held back until then. */
const CLOCK_AHEAD_TOLD_MS = 5 * 60_000;

export function registerDispatchCommand(program: Command, context: CliContext): void {
  withFolderPassOptions(
    program
      .command('dispatch')
      .description('send every file put into an outbox folder, then move it into sent/; --watch keeps doing so')
      .argument('<folder>', 'the outbox folder (it must exist)')
      .option('--to <mailbox>', `recipient for files without their own (in <file>${CONTROL_SUFFIX})`, headerValueOption)
      .option('--workflow <id>', 'workflow id for files without their own', headerValueOption)
      .option('--subject <text>', 'subject for files without their own', headerValueOption)
      .option('--chunk-size <size>', CHUNK_SIZE_HELP, chunkSizeOption)
      .option('--gzip', 'gzip each chunk for the journey')
      .option('--checksum', 'read each file once first and send its sha256 (mex-Content-Checksum)'),
    'the folder',
    true,
  )
    .option('--json', 'print a JSON line per file sent (its receipt: messageId, file, sentPath, to, workflowId, ...)')
    .addHelpText(
      'after',
      [
        '',
        `Every file in the folder goes as one message (in chunks if large). A file may have a control`,
        `file beside it, <file>${CONTROL_SUFFIX}: {"to", "workflowId", "subject", "localId", "fileName"}, any of them;`,
        '--to, --workflow and --subject fill in what it leaves out. Put the control file in first.',
        '',
        `Once sent, the file moves to ${SENT_FOLDER}/<ID>_<file>, beside ${SENT_FOLDER}/<ID>.json (its receipt), and the`,
        'line "<ID> <file>" is printed. A file the server refuses (unknown recipient, workflow not',
        `allowed, a message too large) or with a bad control file moves to ${FAILED_FOLDER}/, beside <name>.error.json with the`,
        'reason (but a recipient or workflow refused when both came from --to and --workflow, or chunks larger',
        'than the server takes, are the setup\'s mistake: the files stay). A file that fails otherwise (server',
        'away, file changing) stays, is named on stderr and is tried again: --watch after one interval, then',
        'two, four, ... (at most an hour). One whose send may have gone though its answer never came (or',
        'came as a server failure, 500, 502 or 504, given after it may have recorded the message) waits',
        'until a second send could not make it arrive twice (16 minutes after the first; stderr gives the time).',
        '',
        `A control file with no file of its name beside it for ${LONE_CONTROL_MS / 60_000} minutes is named on stderr (misnamed? its file may`,
        'have gone with the defaults), by each run (under --watch, once while it stays unchanged); it is left alone.',
        '',
        'Left alone: hidden files, *.part and *.tmp in any case (write there, then rename into place),',
        'Thumbs.db and desktop.ini (Windows Explorer\'s), control files, folders, links to anything but a',
        `file (a link to a file is followed), and files (or their control files) changed in the last`,
        `${SETTLE_MS / 1000} seconds, by their time and as dispatch sees them (a pass waits that long once, to see`,
        'them unchanged, whatever the clock of the share they are on). A file that cannot be looked at (a',
        'name that is not UTF-8, a control file that cannot be read) is named on stderr and stays. A second',
        'dispatcher on the same folder is refused while one works on it (.meshbox-dispatch.lock, naming host',
        'and process; one left by a process of this host that is gone is taken over, one of another host is',
        'not: containers that share a folder need distinct host names).',
        'A file that changed while it was sent stays (the message holds it as it was; stderr names it)',
        'and goes again, whole, once it has settled; so does one renamed into its place meanwhile.',
        '',
        'A run cut short (crash, power cut, Ctrl-C) sends nothing twice: each file\'s message is noted in',
        '.meshbox-dispatch/ before it is sent (with a local id, the control file\'s or one made up), and the',
        'next run finds it by tracking: a finished message just moves to sent/, a part-sent one is resumed,',
        'one a meshbox server discarded as never completed goes again. One that went and failed since',
        '(undeliverable, error) or is in a status not known is not sent again: the file moves to failed/,',
        'the reason naming the message. So does one whose local id is on several messages, for a person to check.',
        'Only this recovery reads a message\'s status again: one sent on a normal run moves to sent/ once the server',
        'takes it, and stays there should it turn undeliverable later (meshbox track <id> tells).',
        'Without --watch, exits 1 if any file failed or was refused. A stop (Ctrl-C, SIGTERM, SIGHUP) ends the send',
        'in hand at once: --watch then exits 0; a single run exits 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP.',
      ].join('\n'),
    )
    .action(async (folder: string, flags: DispatchFlags, command: Command) => {
      // Said once per file and time, whatever the flags: a --watch service would otherwise hold the file back for hours without a word.
      // Only files still ahead are remembered: a service watching a share whose clock runs ahead meets a new one with every file.
      const toldAhead = new Map<string, number>();
      const aheadOfClock = (file: string, settlesAt: Date): void => {
        const now = Date.now();
        for (const [told, until] of toldAhead) if (until <= now) toldAhead.delete(told);
        if (toldAhead.get(file) === settlesAt.getTime()) return;
        toldAhead.set(file, settlesAt.getTime());
        context.io.stderr(
          `meshbox: ${file}: its modification time (or its control file's) is ahead of this machine's clock (a share whose server's clock runs ahead?): it is left until ${settlesAt.toISOString()}, when it will not have changed for ${SETTLE_MS / 1000} s\n`,
        );
      };
      // Said once per control file and time: a misnamed one stays for good, and --watch looks every few seconds.
      const toldLone = new Set<string>();
      const loneControl: DispatchOptions['onLoneControlFile'] = ({ name, file, changedAt }) => {
        const told = `${name}\0${changedAt.getTime()}`;
        if (toldLone.has(told)) return;
        toldLone.add(told);
        context.io.stderr(
          `meshbox: ${name}: no file ${file} beside it since ${changedAt.toISOString()}: is it misnamed? (a control file is <file>${CONTROL_SUFFIX}; it is left alone)\n`,
        );
      };
      const options: DispatchOptions = {
        ...(await existingFolder(context, command, folder, flags)),
        defaults: {
          ...(flags.to === undefined ? {} : { to: flags.to }),
          ...(flags.workflow === undefined ? {} : { workflowId: flags.workflow }),
          ...(flags.subject === undefined ? {} : { subject: flags.subject }),
        },
        chunkSize: flags.chunkSize ?? DEFAULT_CHUNK_SIZE,
        gzip: flags.gzip === true,
        checksum: flags.checksum === true,
        progress: context.progress(flags),
        onSent: (receipt) => context.print(flags.json ? JSON.stringify(receipt) : `${receipt.messageId} ${receipt.file}`),
        onRefused: (file, reason) => context.io.stderr(`meshbox: ${file}: ${reason} (moved to ${FAILED_FOLDER}/)\n`),
        onFailed: (file, error) =>
          context.io.stderr(
            `${errorLine(error)} (${file} ${mayHaveBeenSent(error) ? 'may have been delivered all the same: it stays, and the next pass looks for it by its local id before sending it again; do not send it by hand' : 'stays in the folder'})\n`,
          ),
        onLoneControlFile: loneControl,
        onUnsettled: (file, settlesAt) => {
          if (settlesAt.getTime() - Date.now() <= SETTLE_MS + CLOCK_AHEAD_TOLD_MS) context.tell(flags, `${file} changed in the last ${SETTLE_MS / 1000} s: left for the next pass`);
          else aheadOfClock(file, settlesAt);
        },
      };
      const unsent = await runFolderPasses(context, command, flags, {
        polled: 'the folder',
        interrupted: 'a file not yet sent stays in the folder, and one sent in part is finished by the next run',
        once: async (client, signal) => {
          const { failed, refused } = await dispatchFolder(client, { ...options, signal });
          return failed + refused;
        },
        watch: (client, watching) => watchFolder(client, { ...options, ...watching }),
      });
      if (unsent > 0) throw new Error(`${unsent} file${unsent === 1 ? '' : 's'} not sent, or not known to have arrived (see above)`);
    });
}
