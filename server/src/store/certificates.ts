import type { RedisClient } from './redis-client.ts';
// Not through the PKI index, which loads node-forge: the server needs none of it, and its 1.6 MiB
// of heap would be marked by every full garbage collection.
import { normalizeSerialNumber } from '../../../shared/src/pki/serial-number.ts';
import type { RedisKeys } from './keys.ts';

export interface Revocation {
  readonly serialNumber: string;
  readonly revokedAt: Date;
}

/** Which certificates were issued to which mailbox, and which are revoked. Serials are normalised hex. */
export class CertificateStore {
  readonly #redis: RedisClient;
  readonly #keys: RedisKeys;

  constructor(redis: RedisClient, keys: RedisKeys) {
    this.#redis = redis;
    this.#keys = keys;
  }

  /** `holder`: a mailbox id, or the name of a monitoring system's certificate. */
  async recordIssued(holder: string, serialNumber: string): Promise<void> {
    const serial = normalizeSerialNumber(serialNumber);
    await Promise.all([this.#redis.sadd(this.#keys.mailboxCertificates(holder), serial), this.#redis.hset(this.#keys.certificateHolders, serial, holder)]);
  }

  async issuedTo(mailboxId: string): Promise<readonly string[]> {
    return (await this.#redis.smembers(this.#keys.mailboxCertificates(mailboxId))).sort();
  }

  /**
   * Whom a serial is recorded as issued to, if anyone. A serial recorded before holders were
   * kept is looked for in every mailbox's (admin commands only).
   */
  async holderOf(serialNumber: string): Promise<string | undefined> {
    const serial = normalizeSerialNumber(serialNumber);
    const holder = await this.#redis.hget(this.#keys.certificateHolders, serial);
    if (holder !== null) return holder;
    const mailboxIds = await this.#redis.smembers(this.#keys.mailboxIndex);
    const holds = await Promise.all(mailboxIds.map((id) => this.#redis.sismember(this.#keys.mailboxCertificates(id), serial)));
    return mailboxIds.find((_, index) => holds[index] === 1);
  }

  /** Revokes a serial; false when it was revoked already. */
  async revoke(serialNumber: string, at: Date): Promise<boolean> {
    return (await this.#redis.hsetnx(this.#keys.revokedCertificates, normalizeSerialNumber(serialNumber), String(at.getTime()))) === 1;
  }

  async isRevoked(serialNumber: string): Promise<boolean> {
    return (await this.#redis.hexists(this.#keys.revokedCertificates, normalizeSerialNumber(serialNumber))) === 1;
  }

  async revocations(): Promise<readonly Revocation[]> {
    const entries = await this.#redis.hgetall(this.#keys.revokedCertificates);
    return Object.entries(entries)
      .map(([serialNumber, at]) => ({ serialNumber, revokedAt: new Date(Number(at)) }))
      .sort((a, b) => a.revokedAt.getTime() - b.revokedAt.getTime());
  }
}
