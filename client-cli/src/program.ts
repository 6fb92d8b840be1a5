import { Command, CommanderError, Help, Option } from 'commander';
import { PROFILE_SOURCE, SETTING_SOURCES } from './client/settings.ts';
import { printable } from './client/untrusted-text.ts';
import { registerAckCommand } from './commands/ack.ts';
import { registerCertCommand } from './commands/cert.ts';
import { type CliIo, createContext, errorLine, processIo } from './commands/context.ts';
import { registerCountCommand } from './commands/count.ts';
import { registerDispatchCommand } from './commands/dispatch.ts';
import { registerDownloadCommand } from './commands/download.ts';
import { registerHandshakeCommand } from './commands/handshake.ts';
import { registerInboxCommand } from './commands/inbox.ts';
import { registerLookupCommand } from './commands/lookup.ts';
import { InterruptedError } from './commands/interruption.ts';
import { registerReceiveCommand } from './commands/receive.ts';
import { registerSendCommand } from './commands/send.ts';
import { registerTrackCommand } from './commands/track.ts';
import { VERSION } from './version.ts';

/** Exit status of a usage error (bad or missing arguments), as most Unix tools use. */
export const USAGE_EXIT_CODE = 2;

function optionTerm(option: Option): string {
  return option.mandatory ? option.flags : `[${option.flags}]`;
}

/**
 * How a command appears in `meshbox --help`: its arguments and every option, so the top
 * level help alone shows how to call anything.
 */
function commandSynopsis(command: Command): string {
  const args = command.registeredArguments.map((argument) => {
    const name = `${argument.name()}${argument.variadic ? '...' : ''}`;
    return argument.required ? `<${name}>` : `[${name}]`;
  });
  const options = command.options.filter((option) => !option.hidden).map(optionTerm);
  return [command.name(), ...args, ...options, ...(command.commands.length > 0 ? ['<command>'] : [])].join(' ');
}

/** Terms longer than this (command synopses) get a line of their own, their description below. */
const HELP_TERM_WIDTH = 26;

const helpLayout: Partial<Help> = {
  subcommandTerm: commandSynopsis,
  padWidth(command, helper) {
    return Math.min(Help.prototype.padWidth.call(helper, command, helper), HELP_TERM_WIDTH);
  },
  formatItem(term, termWidth, description, helper) {
    if (helper.displayWidth(term) <= termWidth) return Help.prototype.formatItem.call(helper, term, termWidth, description, helper);
    return `  ${term}\n${Help.prototype.formatItem.call(helper, '', termWidth, description, helper)}`;
  },
};

function addConnectionOptions(command: Command, hidden: boolean): void {
  for (const source of [...Object.values(SETTING_SOURCES), PROFILE_SOURCE]) {
    // No commander defaults: a default flag value would hide the environment variable and the profile.
    const fallback = source.fallback ? ` (default ${source.fallback})` : '';
    const option = new Option(source.flag, `${source.what}${fallback} [env ${source.env}]`);
    command.addOption(hidden ? option.hideHelp() : option);
  }
  if (hidden) command.addHelpText('after', '\nConnection flags (--profile, --mailbox, --cert, ...): see meshbox --help.');
}

/**
 * The command a command line names, as commander finds it: the first argument that is neither
 * a program option nor the value of one (program options come only before the command); for
 * `help <command>`, that command. Undefined when it names none (`meshbox --help`, `meshbox help`).
 */
function commandNamed(argv: readonly string[], programOptions: readonly Option[]): string | undefined {
  const takesValue = new Set(programOptions.filter((option) => option.required || option.optional).flatMap((option) => [option.long, option.short]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return argv[i + 1];
    if (takesValue.has(arg)) i++;
    else if (!arg.startsWith('-') || arg === '-') return arg === 'help' ? commandNamed(argv.slice(i + 1), []) : arg;
  }
  return undefined;
}

/**
 * Whether a command line may name an operator command: one that names none of the user
 * commands (a bare --help, a misspelt command) may too, and then gets the full list, or
 * commander's suggestion of the operator command meant. The operator commands' code (the
 * server's stores and configuration, ioredis) is a third of what a command loaded at start
 * (docs/benchmarks.md, "CLI start"), so a user command goes without it.
 */
function mayNameOperatorCommand(argv: readonly string[], program: Command): boolean {
  const named = commandNamed(argv, program.options);
  return named === undefined || !program.commands.some((command) => command.name() === named || command.aliases().includes(named));
}

/** The `meshbox` command line: user commands, admin commands and the global connection flags. */
export async function buildProgram(io: CliIo = processIo(), argv: readonly string[] = []): Promise<Command> {
  const program = new Command('meshbox')
    .description('MESH mailbox client: send, list, download, acknowledge and track messages on a meshbox (or MESH) server')
    .version(VERSION, '-V, --version')
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp(helpLayout);
  addConnectionOptions(program, false);
  program.addHelpText(
    'after',
    '\nConnection settings come from the flags above (before or after the command), then MESHBOX_*\n' +
      'environment variables, then the profile file.',
  );

  const context = createContext(io, argv);
  registerSendCommand(program, context);
  registerDispatchCommand(program, context);
  registerInboxCommand(program, context);
  registerCountCommand(program, context);
  registerDownloadCommand(program, context);
  registerReceiveCommand(program, context);
  registerAckCommand(program, context);
  registerTrackCommand(program, context);
  registerLookupCommand(program, context);
  registerHandshakeCommand(program, context);
  // The same flags, hidden, on each user command, so `meshbox inbox --profile p` works as well.
  for (const command of program.commands) addConnectionOptions(command, true);
  registerCertCommand(program, context);
  if (mayNameOperatorCommand(argv, program)) {
    const [{ registerServeCommand }, { registerAdminCommands }] = await Promise.all([import('./commands/serve.ts'), import('./commands/admin/index.ts')]);
    registerServeCommand(program);
    registerAdminCommands(program);
  }
  // Program options only before the command name: otherwise the global --password would take
  // the value meant for `admin mailbox create --password`. Set after the commands are added, as
  // commander copies it into commands created later, and admin's own option parsing stays as it is.
  program.enablePositionalOptions();
  return program;
}

function allCommands(command: Command): Command[] {
  return [command, ...command.commands.flatMap(allCommands)];
}


/**
 * Runs the CLI and returns its exit status instead of exiting, so tests can run it
 * in-process: 0 success, 1 a failed command, 2 a usage error, 128 + the signal's number for a
 * run the user stopped (130 for Ctrl-C).
 */
export async function runCli(argv: readonly string[], processOrTestIo: CliIo = processIo()): Promise<number> {
  // Whatever a server said reaches the output only as text: no control sequences for the terminal.
  const io: CliIo = { ...processOrTestIo, stdout: (text) => processOrTestIo.stdout(printable(text)), stderr: (text) => processOrTestIo.stderr(printable(text)) };
  const program = await buildProgram(io, argv);
  // Throw instead of process.exit(); settings are copied to subcommands only at creation, so set each.
  for (const command of allCommands(program)) command.exitOverride();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (error) {
    // Commander has printed its own message; help and --version end with 0, anything else is usage.
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : USAGE_EXIT_CODE;
    io.stderr(`${errorLine(error)}\n`);
    return error instanceof InterruptedError ? error.exitCode : 1;
  }
}
