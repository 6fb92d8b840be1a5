import { randomBytes } from 'node:crypto';
import { text } from 'node:stream/consumers';
import type { Command } from 'commander';
import { readGivenFile } from './pki-files.ts';

export interface PasswordOptions {
  readonly password?: string;
  readonly passwordFile?: string;
}

export interface ChosenPassword {
  readonly password: string;
  /** Made here because none was given: the operator must be shown it. */
  readonly generated: boolean;
}

/** --password and --password-file: a password on the command line shows in `ps`, one in a file or on stdin does not. */
export function addPasswordOptions(command: Command, what: string): Command {
  return command
    .option('--password <password>', `${what} ('-': read it from stdin; default: a random one, printed)`)
    .option('--password-file <file>', `read ${what} from a file (one line)`);
}

/** The password given (one trailing line break dropped from a file or stdin), or a random one. */
export async function choosePassword(options: PasswordOptions): Promise<ChosenPassword> {
  if (options.password !== undefined && options.passwordFile !== undefined) throw new Error('give --password or --password-file, not both');
  const given = await givenPassword(options);
  if (given === undefined) return { password: randomBytes(16).toString('hex'), generated: true };
  if (given === '') throw new Error('the password must not be empty');
  // A control character (a second line, a stray tab) is surely not meant, and no client could type it.
  if (/\p{Cc}/u.test(given)) throw new Error('the password must be one line without control characters');
  return { password: given, generated: false };
}

async function givenPassword(options: PasswordOptions): Promise<string | undefined> {
  if (options.passwordFile !== undefined) return withoutLineBreak(await readGivenFile(options.passwordFile, 'the password file (--password-file)'));
  if (options.password === '-') return withoutLineBreak(await text(process.stdin));
  return options.password;
}

function withoutLineBreak(content: string): string {
  return content.replace(/\r?\n$/, '');
}
