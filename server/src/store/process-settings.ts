import { randomUUID } from 'node:crypto';
import { fingerprintMatches, keyFingerprint } from './key-fingerprint.ts';
import { LuaScript } from './lua-script.ts';
import type { RedisClient } from './redis-client.ts';
import type { RedisKeys } from './keys.ts';

const timeScript = new LuaScript('time', ['redis-now-ms']);
const reportScript = new LuaScript('report-process', ['redis-now-ms']);

/**
 * Now by Redis's clock (the node holding the reports), in ms: reports are dated and compared by
 * it, as the processes' own clocks may be minutes apart (PROCESS_CLOCKS_APART_MS), and one ahead
 * would take a running process for gone, or one behind a later process for the earlier.
 */
async function redisNow(redis: RedisClient, key: string): Promise<number> {
  return (await timeScript.run(redis, [key], [])) as number;
}

/** How often a running process says it is there, with its settings. */
export const REPORT_EVERY_MS = 10_000;
/** A process not heard from for this long has stopped (or lost Redis): its settings no longer count. */
const GONE_AFTER_MS = 35_000;

/** A setting this process was started with otherwise than a process running before it. */
export interface SettingDisagreement {
  readonly name: string;
  /** The two values; none for a key, which is reported only as a fingerprint and shown nowhere. */
  readonly here?: number | string;
  readonly there?: number | string;
}

interface Report {
  /** When the process started reporting, in microseconds (by Redis's clock): of two that disagree, the later one gives way. */
  readonly since: number;
  readonly at: number;
  readonly settings: Readonly<Record<string, number | string>>;
  /** How long it reuses a mailbox it has read (MESHBOX_MAILBOX_CACHE_SECONDS): processes may differ. */
  readonly mailboxCacheMs?: number;
}

/**
 * The settings each running process of a deployment was started with, of those that must be
 * alike: the message periods, by which an API process dates a message's expiry and purge and a
 * worker carries them out (one process would otherwise expire, purge or date a message
 * otherwise than another), the request limits, and keys. Each process reports its own every
 * REPORT_EVERY_MS; one not heard from for GONE_AFTER_MS no longer counts.
 *
 * A key is reported as a fingerprint (key-fingerprint.ts), as the secret key's check value
 * stands for it (MailboxStore.secretKeyMatches): a process tells whether its key is another's
 * by checking it against that one's fingerprint, and whoever reads Redis learns no key. It is
 * compared among the processes running, not against a value kept for good as the secret key's
 * is: nothing stored depends on it, so a deployment changes it as it changes its periods.
 */
export class ProcessSettingsStore {
  readonly #redis: RedisClient;
  readonly #key: string;
  readonly #settings: Readonly<Record<string, number | string>>;
  readonly #secrets: Readonly<Record<string, string>>;
  readonly #processId = randomUUID();
  #since: number | undefined;
  /** The settings as reported: the keys' fingerprints in place of the keys, made once (each costs a quarter of a second). */
  #reported: Promise<Readonly<Record<string, number | string>>> | undefined;

  readonly #mailboxCacheMs: number;

  /** `secrets`: the keys that must be alike too, by variable, reported by fingerprint only. */
  constructor(
    redis: RedisClient,
    keys: RedisKeys,
    settings: Readonly<Record<string, number | string>>,
    mailboxCacheMs: number,
    secrets: Readonly<Record<string, string>> = {},
  ) {
    this.#redis = redis;
    this.#key = keys.processSettings;
    this.#settings = settings;
    this.#secrets = secrets;
    this.#mailboxCacheMs = mailboxCacheMs;
  }

  /**
   * Reports this process, then compares: where its settings differ from those of a process
   * running since before it, they are returned and this process's report withdrawn (it is not
   * to run). Of two starting at once with different settings, the later gives way.
   */
  async join(): Promise<readonly SettingDisagreement[]> {
    const [since, now] = await this.#write();
    this.#since = since;
    const reports = earliestFirst(Object.entries(await this.#redis.hgetall(this.#key)).map(([processId, text]) => ({ processId, report: parseReport(text) })));
    const gone: string[] = [];
    let disagreements: SettingDisagreement[] = [];
    // A key is compared with the earliest running process's that says it only (each running one was compared so at its own start): one hash at most.
    const keysCompared = new Set<string>();
    for (const { processId, report } of reports) {
      if (report === undefined || now - report.at > GONE_AFTER_MS) {
        gone.push(processId);
        continue;
      }
      const earlier = report.since < this.#since || (report.since === this.#since && processId < this.#processId);
      if (processId === this.#processId || !earlier || disagreements.length > 0) continue;
      disagreements = await this.#disagreementsWith(report, keysCompared);
    }
    if (gone.length > 0) await this.#redis.hdel(this.#key, ...gone);
    if (disagreements.length > 0) await this.withdraw();
    return disagreements;
  }

  /** Where this process's settings differ from a report's (one from before a setting was reported does not say: it is not compared). */
  async #disagreementsWith(report: Report, keysCompared: Set<string>): Promise<SettingDisagreement[]> {
    const differing: SettingDisagreement[] = Object.entries(this.#settings)
      .filter(([name, value]) => name in report.settings && report.settings[name] !== value)
      .map(([name, here]) => ({ name, here, there: report.settings[name]! }));
    const own = await this.#reported;
    for (const [name, key] of Object.entries(this.#secrets)) {
      const fingerprint = report.settings[name];
      // One of a release before says no key: the next that says one is compared.
      if (fingerprint === undefined || keysCompared.has(name)) continue;
      keysCompared.add(name);
      // Under the same salt (see #withFingerprints) the same key gives the same fingerprint; one under another salt is hashed to tell.
      if (fingerprint !== own?.[name] && !(await fingerprintMatches(String(fingerprint), key))) differing.push({ name });
    }
    return differing;
  }

  /** Says this process is still there. */
  async report(): Promise<void> {
    await this.#write();
  }

  /** Writes this process's report, dated by Redis in the same step (report-process.lua); returns when it began reporting (µs) and that date (ms). */
  async #write(): Promise<[since: number, now: number]> {
    this.#reported ??= this.#withFingerprints();
    const rest: Omit<Report, 'since' | 'at'> = { settings: await this.#reported, mailboxCacheMs: this.#mailboxCacheMs };
    return (await reportScript.run(this.#redis, [this.#key], [this.#processId, JSON.stringify(rest), this.#since ?? ''])) as [number, number];
  }

  /**
   * This process's settings with its keys' fingerprints, each under the salt of a running
   * process's (a random one for the first): a start then costs one hash (a quarter of a second),
   * not one per process running, as comparing under another's salt would.
   */
  async #withFingerprints(): Promise<Readonly<Record<string, number | string>>> {
    // The earliest process's salt: the one a join compares the key with.
    const reports = earliestFirst(Object.values(await this.#redis.hgetall(this.#key)).map((text) => ({ report: parseReport(text) })));
    const fingerprints = await Promise.all(
      Object.entries(this.#secrets).map(async ([name, key]) => {
        const running = reports.map(({ report }) => report?.settings[name]).find((value) => typeof value === 'string');
        return [name, await keyFingerprint(key, running)] as const;
      }),
    );
    return { ...this.#settings, ...Object.fromEntries(fingerprints) };
  }

  /** At a stop: this process no longer counts. */
  async withdraw(): Promise<void> {
    await this.#redis.hdel(this.#key, this.#processId);
  }
}

/** Reports by when their process began reporting, the earliest first (an unreadable one last). */
function earliestFirst<T extends { readonly report: Report | undefined }>(reports: T[]): T[] {
  return reports.sort((a, b) => (a.report?.since ?? Number.MAX_SAFE_INTEGER) - (b.report?.since ?? Number.MAX_SAFE_INTEGER));
}

/**
 * The longest time a running process reuses a mailbox it has read (undefined while none
 * reports): how long a change to a mailbox may go unseen, which `admin mailbox disable` waits.
 */
export async function longestMailboxCacheMs(redis: RedisClient, keys: RedisKeys): Promise<number | undefined> {
  const now = await redisNow(redis, keys.processSettings);
  const running = Object.values(await redis.hgetall(keys.processSettings))
    .map(parseReport)
    .filter((report) => report !== undefined && now - report.at <= GONE_AFTER_MS && typeof report.mailboxCacheMs === 'number');
  return running.length === 0 ? undefined : Math.max(...running.map((report) => report!.mailboxCacheMs!));
}

function parseReport(text: string): Report | undefined {
  try {
    const report = JSON.parse(text) as Partial<Report>;
    return typeof report.since === 'number' && typeof report.at === 'number' && typeof report.settings === 'object' && report.settings !== null ? (report as Report) : undefined;
  } catch {
    return undefined;
  }
}
