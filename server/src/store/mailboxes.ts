import { LRUCache } from 'lru-cache';
import { mapInBatches } from '../../../shared/src/batches.ts';
import { type RedisClient, scanPages } from './redis-client.ts';
import type { RedisKeys } from './keys.ts';
import { KeptAnswers } from './kept-answers.ts';
import { LuaScript } from './lua-script.ts';
import type { PasswordCipher } from './password-cipher.ts';

const createMailbox = new LuaScript('create-mailbox');
const updateMailbox = new LuaScript('update-existing-hash');
const setMailboxWorkflow = new LuaScript('set-mailbox-workflow');
const updateMailboxProfile = new LuaScript('update-mailbox-profile');
/** How many stored passwords are tried before a directory's first key check value is kept. */
const KEY_EVIDENCE_SAMPLE = 20;
/** Receivers read at a time. */
const LOOKUP_BATCH = 500;

export interface Mailbox {
  readonly id: string;
  readonly password: string;
  readonly name: string;
  readonly odsCode: string;
  readonly active: boolean;
  /** Workflows it may send; '*' means any. */
  readonly sendWorkflows: readonly string[];
  /** Workflows it may receive; '*' means any (but only named ones are found by lookups). */
  readonly receiveWorkflows: readonly string[];
  readonly createdAt: Date;
  /** Its system's last handshake ("validate mailbox"), which MESH clients make at start and daily; undefined if none yet. */
  readonly lastHandshake: LastHandshake | undefined;
}

export interface LastHandshake {
  readonly at: Date;
  /** What the client said it runs (mex-ClientVersion and the rest), as one line. */
  readonly client: string;
}

export type MailboxProfile = Pick<Mailbox, 'id' | 'name' | 'odsCode'>;

export interface NewMailbox {
  readonly id: string;
  readonly password: string;
  readonly name?: string;
  readonly odsCode?: string;
  /** Workflows it may send and receive; default ['*'], any. */
  readonly workflows?: readonly string[];
}

export type WorkflowDirection = 'send' | 'receive';

/** What an admin may correct of a mailbox after its creation; a field left out stays as it is. */
export type ProfileChanges = Partial<Pick<Mailbox, 'name' | 'odsCode'>>;

/** A profile update's outcome: `before` is what the mailbox had, for saying (and auditing) what changed. */
export type ProfileUpdate =
  | { readonly outcome: 'not_found' }
  | { readonly outcome: 'unchanged' }
  | { readonly outcome: 'updated'; readonly before: MailboxProfile; readonly after: MailboxProfile };

export const ANY_WORKFLOW = '*';

/** Whether a mailbox's workflow list admits a workflow. */
export function workflowAllowed(workflows: readonly string[], workflowId: string): boolean {
  return workflows.includes(ANY_WORKFLOW) || workflows.includes(workflowId);
}

/**
 * A mailbox whose password this server cannot decrypt: it was stored under another
 * MESHBOX_SECRET_KEY (an admin command run with the wrong key). Only a new password mends it.
 */
export class UnreadableMailboxError extends Error {
  override name = 'UnreadableMailboxError';
  readonly mailboxId: string;

  constructor(mailboxId: string, cause: unknown) {
    super(
      `mailbox ${mailboxId}: its password was not encrypted under this MESHBOX_SECRET_KEY; ` +
        `if the key is right, give the mailbox a new password (meshbox admin mailbox password ${mailboxId})`,
      { cause },
    );
    this.mailboxId = mailboxId;
  }
}

export interface MailboxStoreOptions {
  readonly readCache?: MailboxReadCache;
  /** Told of each mailbox a listing or lookup leaves out because its record cannot be read. */
  readonly onUnreadable?: (error: UnreadableMailboxError) => void;
}

export interface MailboxReadCache {
  /** How long a mailbox read stays in memory; a change made elsewhere shows here within it. */
  readonly ttlMs: number;
  /** How many mailboxes are held at most (the least recently used go first). */
  readonly maxEntries: number;
}

/**
 * Mailbox registry: one Redis hash per mailbox plus an index set for listing. Every request
 * reads its mailbox, and every send its recipient's, from one cluster slot: a server keeps
 * what it read for a moment (`readCache`), so that slot is not read on every request.
 */
export class MailboxStore {
  readonly #redis: RedisClient;
  readonly #keys: RedisKeys;
  readonly #passwords: PasswordCipher;
  readonly #recent: LRUCache<string, Mailbox> | undefined;
  readonly #onUnreadable: ((error: UnreadableMailboxError) => void) | undefined;
  readonly #lookups = new KeptAnswers<MailboxProfile>();

  constructor(redis: RedisClient, keys: RedisKeys, passwords: PasswordCipher, { readCache, onUnreadable }: MailboxStoreOptions = {}) {
    this.#redis = redis;
    this.#keys = keys;
    this.#passwords = passwords;
    this.#recent = readCache && readCache.ttlMs > 0 ? new LRUCache({ max: readCache.maxEntries, ttl: readCache.ttlMs }) : undefined;
    this.#onUnreadable = onUnreadable;
  }

  /** Registers a mailbox; false when the id is taken (by another call). */
  async create(mailbox: NewMailbox, now: Date = new Date()): Promise<boolean> {
    // A workflow given twice is one; an ODS code is shown as its index files it, upper case.
    const workflows = [...new Set(mailbox.workflows ?? [ANY_WORKFLOW])];
    const odsCode = (mailbox.odsCode ?? '').toUpperCase();
    const fields = {
      id: mailbox.id,
      password: this.#passwords.encrypt(mailbox.password),
      name: mailbox.name ?? '',
      odsCode,
      active: '1',
      sendWorkflows: JSON.stringify(workflows),
      receiveWorkflows: JSON.stringify(workflows),
      createdAt: String(now.getTime()),
    };
    const keys = [
      this.#keys.mailbox(mailbox.id),
      this.#keys.mailboxIndex,
      this.#keys.odsMailboxes(odsCode),
      this.#keys.directoryVersion,
      ...workflows.filter((workflow) => workflow !== ANY_WORKFLOW).map((workflow) => this.#keys.workflowReceivers(workflow)),
    ];
    if ((await createMailbox.run(this.#redis, keys, [mailbox.id, ...Object.entries(fields).flat()])) === 1) return true;
    // ioredis sends a command again when its connection broke before the answer came: the
    // mailbox found may be this very call's, which its password tells (encrypted under a fresh IV,
    // it is no other call's).
    return (await this.#redis.hget(keys[0]!, 'password')) === fields.password;
  }

  /**
   * The mailbox as read within the cache's time to live (when this store has a cache), or
   * `fresh` from Redis. Only mailboxes that exist are remembered: one created a moment ago is
   * found at once. Throws UnreadableMailboxError for a record whose password cannot be decrypted.
   */
  async get(mailboxId: string, { fresh = false } = {}): Promise<Mailbox | undefined> {
    const remembered = fresh ? undefined : this.#recent?.get(mailboxId);
    if (remembered) return remembered;
    const fields = await this.#redis.hgetall(this.#keys.mailbox(mailboxId));
    const mailbox = fields.id ? toMailbox(fields, this.#passwords) : undefined;
    if (mailbox) this.#recent?.set(mailboxId, mailbox);
    else this.#recent?.delete(mailboxId);
    return mailbox;
  }

  /**
   * How a mailbox is shown to others (tracking names its parties): read without its password, so
   * one stored under another secret key still shows, and takes nothing down with it.
   */
  async profile(mailboxId: string): Promise<MailboxProfile | undefined> {
    const remembered = this.#recent?.get(mailboxId);
    if (remembered) return remembered;
    const [id, name, odsCode] = await this.#redis.hmget(this.#keys.mailbox(mailboxId), 'id', 'name', 'odsCode');
    return id ? { id, name: name ?? '', odsCode: odsCode ?? '' } : undefined;
  }

  /** The ids of every mailbox, sorted: for a pass over many, a batch at a time. */
  async ids(): Promise<string[]> {
    return (await this.#redis.smembers(this.#keys.mailboxIndex)).sort();
  }

  /** Name, state and last handshake, read without the password (which a listing does not need); undefined when there is no such mailbox. */
  async listing(mailboxId: string): Promise<Pick<Mailbox, 'id' | 'name' | 'active' | 'lastHandshake'> | undefined> {
    const [id, name, active, lastHandshakeAt, lastClient] = await this.#redis.hmget(this.#keys.mailbox(mailboxId), 'id', 'name', 'active', 'lastHandshakeAt', 'lastClient');
    return id ? { id, name: name ?? '', active: active === '1', lastHandshake: lastHandshakeOf(lastHandshakeAt, lastClient) } : undefined;
  }

  /**
   * Records a handshake: when a mailbox's system last said it was there, and what it runs. Written
   * straight, not through the cache: handshakes are rare (daily per client), and nothing reads it on a request.
   */
  async recordHandshake(mailboxId: string, handshake: LastHandshake): Promise<void> {
    await updateMailbox.run(this.#redis, [this.#keys.mailbox(mailboxId)], ['lastHandshakeAt', String(handshake.at.getTime()), 'lastClient', handshake.client]);
  }

  /** Every mailbox but those whose record cannot be read (each is told to `onUnreadable`). */
  async list(): Promise<readonly Mailbox[]> {
    return this.#readable(await this.ids());
  }

  /** Activates or deactivates; false when there is no such mailbox. */
  async setActive(mailboxId: string, active: boolean): Promise<boolean> {
    const updated = await updateMailbox.run(this.#redis, [this.#keys.mailbox(mailboxId), this.#keys.directoryVersion], ['active', active ? '1' : '0']);
    return this.#changed(mailboxId, updated === 1);
  }

  /**
   * Changes a mailbox's name and ODS code, moving it between the ODS codes' lookup indexes in the
   * same atomic step; 'unchanged' (nothing written) when it has the values given already.
   */
  async updateProfile(mailboxId: string, changes: ProfileChanges): Promise<ProfileUpdate> {
    // As read before an attempt that found the mailbox changed: ioredis sends a command again when
    // its connection broke before the answer came, and the change found may be this call's own.
    let firstRead: MailboxProfile | undefined;
    for (;;) {
      const [id, name, odsCode] = await this.#redis.hmget(this.#keys.mailbox(mailboxId), 'id', 'name', 'odsCode');
      if (!id) return { outcome: 'not_found' };
      const before = { id, name: name ?? '', odsCode: odsCode ?? '' };
      const after = { id, name: changes.name ?? before.name, odsCode: changes.odsCode?.toUpperCase() ?? before.odsCode };
      if (after.name === before.name && after.odsCode === before.odsCode) {
        return firstRead ? this.#changed(mailboxId, { outcome: 'updated', before: firstRead, after }) : { outcome: 'unchanged' };
      }
      const outcome = await updateMailboxProfile.run(
        this.#redis,
        [this.#keys.mailbox(mailboxId), this.#keys.odsMailboxes(before.odsCode), this.#keys.odsMailboxes(after.odsCode), this.#keys.directoryVersion],
        [before.name, before.odsCode, after.name, after.odsCode],
      );
      if (outcome === 'not_found') return { outcome };
      if (outcome === 'ok') return this.#changed(mailboxId, { outcome: 'updated', before, after });
      // Changed since it was read (by another admin, or by this call's own first sending): the index named may not be its own.
      firstRead ??= before;
    }
  }

  /** Allows or denies a workflow; 'wildcard' when denying one of a mailbox that allows any, 'absent' when denying one it does not allow, 'present' when allowing one it allows already. */
  async setWorkflow(
    mailboxId: string,
    workflowId: string,
    direction: WorkflowDirection,
    allowed: boolean,
  ): Promise<'ok' | 'not_found' | 'wildcard' | 'absent' | 'present'> {
    const outcome = (await setMailboxWorkflow.run(
      this.#redis,
      [this.#keys.mailbox(mailboxId), this.#keys.workflowReceivers(workflowId), this.#keys.directoryVersion],
      [mailboxId, direction === 'send' ? 'sendWorkflows' : 'receiveWorkflows', workflowId, allowed ? 'allow' : 'deny'],
    )) as 'ok' | 'not_found' | 'wildcard' | 'absent' | 'present';
    return this.#changed(mailboxId, outcome);
  }

  /**
   * Active mailboxes registered to receive a workflow, optionally only those of one ODS code,
   * sorted by id. A workflow may have thousands of receivers, and lookups need no mailbox token:
   * so each answer is kept while the directory's version says nothing has changed (every change
   * counts itself, from any process), and asked again meanwhile it is read once for all.
   */
  async receiversOf(workflowId: string, odsCode?: string): Promise<readonly MailboxProfile[]> {
    const query = JSON.stringify([workflowId, odsCode?.toUpperCase() ?? null]);
    const version = (await this.#redis.get(this.#keys.directoryVersion)) ?? '0';
    return this.#lookups.answer(query, version, () => this.#readReceivers(workflowId, odsCode));
  }

  /**
   * Reads what a lookup shows of each receiver, a batch at a time so that other requests are
   * answered in between, and without keeping the mailboxes: a directory-wide answer must not
   * push those in use out of the read cache. A mailbox whose password this server cannot read is
   * left out, as a send to it would fail (so the password is read too, and decrypted once).
   */
  async #readReceivers(workflowId: string, odsCode: string | undefined): Promise<MailboxProfile[]> {
    const receivers = this.#keys.workflowReceivers(workflowId);
    // A national workflow's receivers are tens of thousands: read whole in one command, they
    // held Redis, and every request, for milliseconds. An organisation's are few.
    const ids = (odsCode === undefined ? await this.#setMembers(receivers) : await this.#redis.sinter(receivers, this.#keys.odsMailboxes(odsCode))).sort();
    const records = await mapInBatches(ids, LOOKUP_BATCH, (id) => this.#redis.hmget(this.#keys.mailbox(id), 'id', 'name', 'odsCode', 'active', 'password'));
    const found: MailboxProfile[] = [];
    for (const [id, name, ods, active, password] of records) {
      if (!id || active !== '1') continue;
      if (!this.#passwords.decrypts(password ?? '')) {
        this.#onUnreadable?.(new UnreadableMailboxError(id, new Error('its password does not decrypt')));
        continue;
      }
      found.push({ id, name: name ?? '', odsCode: ods ?? '' });
    }
    return found;
  }

  /** A set's members a page at a time (scanPages), each once. */
  async #setMembers(key: string): Promise<string[]> {
    const members = new Set<string>();
    for await (const page of scanPages((cursor) => this.#redis.sscan(key, cursor, 'COUNT', LOOKUP_BATCH))) for (const member of page) members.add(member);
    return [...members];
  }

  /**
   * One mailbox stored under another key must not take every listing and lookup down with it.
   * A batch at a time: a national directory's 50,000 reads at once held hundreds of MB.
   */
  async #readable(ids: readonly string[]): Promise<Mailbox[]> {
    const skipUnreadable = (error: unknown): undefined => {
      if (!(error instanceof UnreadableMailboxError)) throw error;
      this.#onUnreadable?.(error);
      return undefined;
    };
    const found = await mapInBatches([...ids].sort(), LOOKUP_BATCH, (id) => this.get(id).catch(skipUnreadable));
    return found.filter((mailbox): mailbox is Mailbox => mailbox !== undefined);
  }

  /** Replaces the password; false when there is no such mailbox. */
  async setPassword(mailboxId: string, password: string): Promise<boolean> {
    const encrypted = this.#passwords.encrypt(password);
    // The directory's version too: a mailbox whose password could not be read is left out of lookups until now.
    const updated = await updateMailbox.run(this.#redis, [this.#keys.mailbox(mailboxId), this.#keys.directoryVersion], ['password', encrypted]);
    return this.#changed(mailboxId, updated === 1);
  }

  /**
   * Whether this store's secret is the one the directory's passwords are encrypted under, told
   * by a check value kept in Redis. Before there is one, the stored passwords tell: a secret
   * that decrypts most of those it tries is the directory's, and keeps its check value (most,
   * not one: a mailbox registered under a wrong key must not let that key claim the directory).
   * An empty directory tells nothing: only a server (`claimEmpty`) makes its secret the
   * directory's then, never an admin command run with whatever key its shell had.
   */
  async secretKeyMatches(options: { readonly claimEmpty?: boolean } = {}): Promise<boolean> {
    const kept = await this.#redis.get(this.#keys.secretKeyCheck);
    if (kept !== null) return this.#passwords.isKeyCheckValue(kept);
    const evidence = await this.#storedPasswordsDecrypt();
    if (evidence === 'none') return options.claimEmpty ? this.#keepCheckValue() : true;
    return evidence === 'most' && this.#keepCheckValue();
  }

  async #keepCheckValue(): Promise<boolean> {
    await this.#redis.set(this.#keys.secretKeyCheck, this.#passwords.keyCheckValue(), 'NX');
    // Another process may have kept its own a moment earlier.
    const checkValue = await this.#redis.get(this.#keys.secretKeyCheck);
    return checkValue !== null && this.#passwords.isKeyCheckValue(checkValue);
  }

  /** Whether most of a sample of the stored passwords decrypt under this secret ('none': nothing stored). */
  async #storedPasswordsDecrypt(): Promise<'none' | 'most' | 'few'> {
    const ids = await this.#redis.srandmember(this.#keys.mailboxIndex, KEY_EVIDENCE_SAMPLE);
    const stored = (await Promise.all(ids.map((id) => this.#redis.hget(this.#keys.mailbox(id), 'password')))).filter((password) => password !== null);
    if (stored.length === 0) return 'none';
    const decrypted = stored.filter((password) => this.#passwords.decrypts(password)).length;
    return decrypted * 2 > stored.length ? 'most' : 'few';
  }

  /** Forgets a mailbox once it has changed, so this process sees the change at once. */
  #changed<T>(mailboxId: string, outcome: T): T {
    this.#recent?.delete(mailboxId);
    return outcome;
  }

  /** Mailboxes a client certificate may act for beyond the one named in its CN. */
  async grantedMailboxes(commonName: string): Promise<readonly string[]> {
    return this.#redis.smembers(this.#keys.certificateGrants(commonName));
  }

  /** Whether a client certificate was granted the mailbox: asked on each of its requests, of a hub's thousands of grants. */
  async isGranted(commonName: string, mailboxId: string): Promise<boolean> {
    return (await this.#redis.sismember(this.#keys.certificateGrants(commonName), mailboxId)) === 1;
  }

  async grantCertificate(commonName: string, mailboxId: string): Promise<void> {
    await this.#redis.sadd(this.#keys.certificateGrants(commonName), mailboxId);
  }

  /** Takes a grant back; false when there was none. */
  async withdrawGrant(commonName: string, mailboxId: string): Promise<boolean> {
    return (await this.#redis.srem(this.#keys.certificateGrants(commonName), mailboxId)) === 1;
  }
}

function toMailbox(fields: Record<string, string>, passwords: PasswordCipher): Mailbox {
  const id = fields.id ?? '';
  return {
    id,
    password: decryptPassword(id, fields.password ?? '', passwords),
    name: fields.name ?? '',
    odsCode: fields.odsCode ?? '',
    active: fields.active === '1',
    sendWorkflows: JSON.parse(fields.sendWorkflows ?? '[]') as string[],
    receiveWorkflows: JSON.parse(fields.receiveWorkflows ?? '[]') as string[],
    createdAt: new Date(Number(fields.createdAt)),
    lastHandshake: lastHandshakeOf(fields.lastHandshakeAt, fields.lastClient),
  };
}

function lastHandshakeOf(at: string | null | undefined, client: string | null | undefined): LastHandshake | undefined {
  return at ? { at: new Date(Number(at)), client: client ?? '' } : undefined;
}

function decryptPassword(mailboxId: string, stored: string, passwords: PasswordCipher): string {
  try {
    return passwords.decrypt(stored);
  } catch (error) {
    throw new UnreadableMailboxError(mailboxId, error);
  }
}
