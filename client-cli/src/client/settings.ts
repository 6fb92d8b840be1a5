import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { z } from 'zod';
import type { ConnectionSettings } from './mesh-client.ts';

export const DEFAULT_URL = 'https://localhost:8443';
export const DEFAULT_TIMEOUT_SECONDS = 120;
/** A day: a request silent for longer is dead whatever the link. */
const MAX_TIMEOUT_SECONDS = 86_400;

export type SettingName = 'url' | 'mailbox' | 'password' | 'sharedKey' | 'cert' | 'key' | 'ca' | 'timeout';

/** Connection flags as the CLI parsed them; the profile flag names a file with the rest. */
export type ConnectionFlags = Partial<Record<SettingName | 'profile', string>>;

export interface SettingSource {
  /** The flag as the CLI declares it. */
  readonly flag: string;
  readonly env: string;
  /** What the setting is, for help texts and error messages. */
  readonly what: string;
  /** The value used when none is given, for help texts. */
  readonly fallback?: string;
}

/** Every connection setting: its flag, environment variable and profile key (the record key). */
export const SETTING_SOURCES: Readonly<Record<SettingName, SettingSource>> = {
  url: { flag: '--url <url>', env: 'MESHBOX_URL', what: 'server URL', fallback: DEFAULT_URL },
  mailbox: { flag: '--mailbox <id>', env: 'MESHBOX_MAILBOX', what: 'mailbox id' },
  password: { flag: '--password <password>', env: 'MESHBOX_PASSWORD', what: 'mailbox password' },
  sharedKey: { flag: '--shared-key <key>', env: 'MESHBOX_SHARED_KEY', what: "shared key (the environment's HMAC secret)" },
  cert: { flag: '--cert <file>', env: 'MESHBOX_CERT', what: 'client certificate (PEM file)' },
  key: { flag: '--key <file>', env: 'MESHBOX_KEY', what: 'client private key (PEM file)' },
  ca: { flag: '--ca <file>', env: 'MESHBOX_CA', what: "server's CA certificate (PEM file)" },
  timeout: {
    flag: '--timeout <seconds>',
    env: 'MESHBOX_TIMEOUT',
    what: 'seconds a request may stall, no byte sent or received, before it fails; an answer that is not a payload has five times this in all',
    fallback: String(DEFAULT_TIMEOUT_SECONDS),
  },
};

export const PROFILE_SOURCE: SettingSource = {
  flag: '--profile <file>',
  env: 'MESHBOX_PROFILE',
  what: 'JSON file with any of the settings above (cert, key and ca paths relative to it)',
};

const SETTING_NAMES = Object.keys(SETTING_SOURCES) as SettingName[];

/** Connection settings are missing, invalid or unreadable; the message says which and how to fix them. */
export class SettingsError extends Error {
  constructor(problems: readonly string[]) {
    super(problems.length === 1 ? problems[0] : `connection settings are incomplete:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'SettingsError';
  }
}

export interface Environment {
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Where relative paths from flags and environment variables start. */
  readonly cwd: string;
}

/** A setting's value and where it came from: relative file paths resolve against `baseDir`. */
interface Candidate {
  readonly value: string;
  readonly origin: string;
  readonly baseDir: string;
}

/** A profile's values are text, as flags and variables are; a number is taken for the timeout too (JSON has them). */
const profileValue = (name: SettingName) =>
  (name === 'timeout' ? z.union([z.string(), z.number()]).transform(String) : z.string()).optional();

const profileSchema = z.strictObject(
  Object.fromEntries(SETTING_NAMES.map((name) => [name, profileValue(name)])) as Record<SettingName, ReturnType<typeof profileValue>>,
);

function howToSupply(name: SettingName): string {
  const source = SETTING_SOURCES[name];
  return `pass ${source.flag}, set ${source.env}, or add "${name}" to a profile (${PROFILE_SOURCE.flag} or ${PROFILE_SOURCE.env})`;
}

function required(name: SettingName, options: { readonly trim?: boolean } = {}) {
  const missing = `${SETTING_SOURCES[name].what} is missing: ${howToSupply(name)}`;
  const text = z.string({ error: missing });
  return (options.trim ? text.trim() : text).min(1, missing);
}

/** The merged settings, checked; cert, key and ca are still file candidates here. */
const mergedSchema = z.object({
  url: z.string().transform((value, context) => {
    const origin = httpsOrigin(value);
    if (origin === undefined) {
      context.addIssue({ code: 'custom', message: `server URL "${value}" must look like https://host[:port]` });
      return z.NEVER;
    }
    return origin;
  }),
  mailbox: required('mailbox')
    .refine((value) => /^[A-Za-z0-9]+$/.test(value), { error: (issue) => `mailbox id "${String(issue.input)}" must be letters and digits only` })
    .transform((value) => value.toUpperCase()),
  password: required('password'),
  // Trimmed as the server trims its own (a key file's newline, pasted into a profile, must not fail every token).
  sharedKey: required('sharedKey', { trim: true }),
  cert: required('cert'),
  key: required('key'),
  ca: required('ca'),
  timeout: z.string().transform((value, context) => {
    const seconds = /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
    if (!(seconds >= 1 && seconds <= MAX_TIMEOUT_SECONDS)) {
      context.addIssue({ code: 'custom', message: `timeout "${value}" must be a whole number of seconds from 1 to ${MAX_TIMEOUT_SECONDS}` });
      return z.NEVER;
    }
    return seconds;
  }),
});

function httpsOrigin(value: string): string | undefined {
  try {
    const url = new URL(value);
    const bare = (url.pathname === '/' || url.pathname === '') && url.search === '' && url.hash === '';
    return url.protocol === 'https:' && bare ? url.origin : undefined;
  } catch {
    return undefined;
  }
}

async function readProfile(path: string): Promise<Partial<Record<SettingName, string>>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new SettingsError([`cannot read profile ${path}: ${(error as Error).message}`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new SettingsError([`profile ${path} is not valid JSON: ${(error as Error).message}`]);
  }
  const parsed = profileSchema.safeParse(json);
  if (!parsed.success) {
    throw new SettingsError(
      parsed.error.issues.map((issue) =>
        issue.code === 'unrecognized_keys'
          ? `profile ${path}: unknown key(s) ${issue.keys.map((key) => `"${key}"`).join(', ')} (known: ${SETTING_NAMES.join(', ')})`
          : `profile ${path}: ${issue.path.length > 0 ? `"${issue.path.join('.')}" ` : ''}${issue.message}`,
      ),
    );
  }
  return parsed.data;
}

type PemSetting = 'cert' | 'key' | 'ca';

/** The file's text, once TLS has taken it as what it is to be (OpenSSL's own errors name no file). */
async function readPem(name: PemSetting, candidate: Candidate): Promise<string> {
  const pem = await readFile(pemPath(candidate), 'utf8').catch((error: unknown) => {
    throw new Error(`cannot read ${describePem(name, candidate)}: ${(error as Error).message}`);
  });
  try {
    // TLS takes a CA file of anything (even a key) and finds out only as it verifies the server.
    if (name === 'ca') new X509Certificate(pem);
    else createSecureContext({ [name]: pem });
  } catch (error) {
    throw new Error(`${describePem(name, candidate)} is not usable: ${(error as Error).message}`);
  }
  return pem;
}

/** Refuses a client certificate and key that are not one pair: every request would fail in its handshake. */
function checkKeyPair(pems: { readonly cert: string; readonly key: string }, candidates: Record<'cert' | 'key', Candidate>): void {
  try {
    createSecureContext(pems);
  } catch (error) {
    throw new SettingsError([`${describePem('cert', candidates.cert)} and ${describePem('key', candidates.key)} are not a pair: ${(error as Error).message}`]);
  }
}

function pemPath(candidate: Candidate): string {
  return resolve(candidate.baseDir, candidate.value);
}

function describePem(name: PemSetting, candidate: Candidate): string {
  return `${SETTING_SOURCES[name].what} ${pemPath(candidate)} (from ${candidate.origin})`;
}

/**
 * Connection settings from, in order of precedence: flags, MESHBOX_* environment variables,
 * then the profile file (--profile or MESHBOX_PROFILE). Every problem is reported at once.
 */
export async function resolveConnectionSettings(flags: ConnectionFlags, environment: Environment): Promise<ConnectionSettings> {
  const { env, cwd } = environment;
  const profileFlag = flags.profile || env[PROFILE_SOURCE.env];
  const profilePath = profileFlag ? resolve(cwd, profileFlag) : undefined;
  const profile = profilePath ? await readProfile(profilePath) : {};

  const pick = (name: SettingName): Candidate | undefined => {
    const flag = flags[name];
    if (flag) return { value: flag, origin: SETTING_SOURCES[name].flag.split(' ')[0]!, baseDir: cwd };
    const fromEnv = env[SETTING_SOURCES[name].env];
    if (fromEnv) return { value: fromEnv, origin: SETTING_SOURCES[name].env, baseDir: cwd };
    const fromProfile = profile[name];
    if (fromProfile && profilePath) return { value: fromProfile, origin: `profile ${profilePath}`, baseDir: dirname(profilePath) };
    return undefined;
  };
  const candidates = Object.fromEntries(SETTING_NAMES.map((name) => [name, pick(name)])) as Record<SettingName, Candidate | undefined>;

  const merged = mergedSchema.safeParse({
    ...Object.fromEntries(SETTING_NAMES.map((name) => [name, candidates[name]?.value])),
    url: candidates.url?.value ?? DEFAULT_URL,
    timeout: candidates.timeout?.value ?? String(DEFAULT_TIMEOUT_SECONDS),
  });
  if (!merged.success) throw new SettingsError(merged.error.issues.map((issue) => issue.message));

  const files = await Promise.allSettled(
    (['cert', 'key', 'ca'] as const).map((name) => readPem(name, candidates[name] as Candidate)),
  );
  const unreadable = files.flatMap((file) => (file.status === 'rejected' ? [(file.reason as Error).message] : []));
  if (unreadable.length > 0) throw new SettingsError(unreadable);
  const [certPem, keyPem, caPem] = files.map((file) => (file as PromiseFulfilledResult<string>).value) as [string, string, string];
  checkKeyPair({ cert: certPem, key: keyPem }, candidates as Record<'cert' | 'key', Candidate>);

  return {
    url: merged.data.url,
    mailboxId: merged.data.mailbox,
    password: merged.data.password,
    sharedKey: merged.data.sharedKey,
    certPem,
    keyPem,
    caPem,
    idleTimeoutMs: merged.data.timeout * 1000,
    certificateSource: `the client certificate ${pemPath(candidates.cert!)} (from ${candidates.cert!.origin})`,
  };
}
