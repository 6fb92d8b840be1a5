import type { Redis } from 'ioredis';
import type { RedisKeys } from './keys.ts';
import { LuaScript } from './lua-script.ts';

const createMailbox = new LuaScript('create-mailbox');
const updateMailbox = new LuaScript('update-existing-hash');

export interface Mailbox {
  readonly id: string;
  readonly password: string;
  readonly name: string;
  readonly odsCode: string;
  readonly active: boolean;
  readonly workflows: readonly string[];
  readonly createdAt: Date;
}

export interface NewMailbox {
  readonly id: string;
  readonly password: string;
  readonly name?: string;
  readonly odsCode?: string;
  readonly workflows?: readonly string[];
}

/** Mailbox registry: one Redis hash per mailbox plus an index set for listing. */
export class MailboxStore {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;

  constructor(redis: Redis, keys: RedisKeys) {
    this.#redis = redis;
    this.#keys = keys;
  }

  /** Registers a mailbox; false when the id is taken. */
  async create(mailbox: NewMailbox, now: Date = new Date()): Promise<boolean> {
    const fields = {
      id: mailbox.id,
      password: mailbox.password,
      name: mailbox.name ?? '',
      odsCode: mailbox.odsCode ?? '',
      active: '1',
      workflows: JSON.stringify(mailbox.workflows ?? []),
      createdAt: String(now.getTime()),
    };
    const keys = [this.#keys.mailbox(mailbox.id), this.#keys.mailboxIndex];
    const created = await createMailbox.run(this.#redis, keys, [mailbox.id, ...Object.entries(fields).flat()]);
    return created === 1;
  }

  async get(mailboxId: string): Promise<Mailbox | undefined> {
    const fields = await this.#redis.hgetall(this.#keys.mailbox(mailboxId));
    return fields.id ? toMailbox(fields) : undefined;
  }

  async list(): Promise<readonly Mailbox[]> {
    const ids = (await this.#redis.smembers(this.#keys.mailboxIndex)).sort();
    const found = await Promise.all(ids.map((id) => this.get(id)));
    return found.filter((mailbox): mailbox is Mailbox => mailbox !== undefined);
  }

  /** Activates or deactivates; false when there is no such mailbox. */
  async setActive(mailboxId: string, active: boolean): Promise<boolean> {
    return (await updateMailbox.run(this.#redis, [this.#keys.mailbox(mailboxId)], ['active', active ? '1' : '0'])) === 1;
  }

  /** Replaces the password; false when there is no such mailbox. */
  async setPassword(mailboxId: string, password: string): Promise<boolean> {
    return (await updateMailbox.run(this.#redis, [this.#keys.mailbox(mailboxId)], ['password', password])) === 1;
  }

  /** Mailboxes a client certificate may act for beyond the one named in its CN. */
  async grantedMailboxes(commonName: string): Promise<readonly string[]> {
    return this.#redis.smembers(this.#keys.certificateGrants(commonName));
  }

  async grantCertificate(commonName: string, mailboxId: string): Promise<void> {
    await this.#redis.sadd(this.#keys.certificateGrants(commonName), mailboxId);
  }
}

function toMailbox(fields: Record<string, string>): Mailbox {
  return {
    id: fields.id ?? '',
    password: fields.password ?? '',
    name: fields.name ?? '',
    odsCode: fields.odsCode ?? '',
    active: fields.active === '1',
    workflows: JSON.parse(fields.workflows ?? '[]') as string[],
    createdAt: new Date(Number(fields.createdAt)),
  };
}
