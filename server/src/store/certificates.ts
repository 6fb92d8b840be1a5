import { type RedisClient, scanPages } from './redis-client.ts';
import { mapInBatches } from '../../../shared/src/batches.ts';
// Not through the PKI index, which loads node-forge: the server needs none of it, and its 1.6 MiB
// of heap would be marked by every full garbage collection.
import { describeCertificate, publicKeyFingerprint } from '../../../shared/src/pki/inspect.ts';
import { normalizeSerialNumber } from '../../../shared/src/pki/serial-number.ts';
import type { RedisKeys } from './keys.ts';

export interface Revocation {
  readonly serialNumber: string;
  readonly revokedAt: Date;
  /** When the certificate expires, as recorded; undefined for one recorded before expiry dates were kept, or never recorded (`cert revoke --unrecorded`). */
  readonly notAfter: Date | undefined;
}

/** Mailboxes whose certificate sets `onRecord` reads at once. */
const ON_RECORD_BATCH = 500;
/** Entries of a directory-sized hash read a command at a time. */
const SCAN_PAGE = 500;

/** A certificate this CA's records show issued. */
export interface CertificateOnRecord {
  readonly serialNumber: string;
  /** The mailbox (or monitoring name) it was issued to. */
  readonly holder: string;
  /** Undefined for one recorded before expiry dates were kept. */
  readonly notAfter: Date | undefined;
  readonly revoked: boolean;
}

/** Which certificates were issued to which mailbox, and which are revoked. Serials are normalised hex. */
export class CertificateStore {
  readonly #redis: RedisClient;
  readonly #keys: RedisKeys;

  constructor(redis: RedisClient, keys: RedisKeys) {
    this.#redis = redis;
    this.#keys = keys;
  }

  /** `holder`: a mailbox id, or the name of a monitoring system's certificate; `certPem`: what was issued to it. */
  async recordIssued(holder: string, certPem: string): Promise<void> {
    const { serialNumber: serial, notAfter } = describeCertificate(certPem);
    await Promise.all([
      this.#redis.sadd(this.#keys.mailboxCertificates(holder), serial),
      this.#redis.hset(this.#keys.certificateHolders, serial, holder),
      this.#redis.hset(this.#keys.certificateExpiry, serial, String(notAfter.getTime())),
      this.#redis.hset(this.#keys.certificateKeys, serial, publicKeyFingerprint(certPem)),
    ]);
  }

  /** The certificates on record with this public key (by `publicKeyFingerprint`), which of them are revoked, and whose they are. */
  async ofKey(fingerprint: string): Promise<{ readonly serials: readonly string[]; readonly revoked: readonly string[]; readonly holders: readonly string[] }> {
    // Every certificate ever recorded: a page at a time, as one HGETALL of a national CA's held Redis for tens of ms.
    const found = new Set<string>();
    for await (const entries of scanPages((cursor) => this.#redis.hscan(this.#keys.certificateKeys, cursor, 'COUNT', SCAN_PAGE))) {
      for (let i = 0; i + 1 < entries.length; i += 2) if (entries[i + 1] === fingerprint) found.add(entries[i]!);
    }
    const serials = [...found].sort();
    if (serials.length === 0) return { serials, revoked: [], holders: [] };
    const [revokedAt, holders] = await Promise.all([
      this.#redis.hmget(this.#keys.revokedCertificates, ...serials),
      this.#redis.hmget(this.#keys.certificateHolders, ...serials),
    ]);
    return {
      serials,
      revoked: serials.filter((_, index) => revokedAt[index] !== null),
      holders: [...new Set(holders.filter((holder) => holder !== null))].sort(),
    };
  }

  async issuedTo(mailboxId: string): Promise<readonly string[]> {
    return (await this.#redis.smembers(this.#keys.mailboxCertificates(mailboxId))).sort();
  }

  /** Records a certificate's end where none is recorded (one issued before dates were kept, seen in use). */
  async recordExpiryUnlessKnown(serialNumber: string, notAfter: Date): Promise<void> {
    await this.#redis.hsetnx(this.#keys.certificateExpiry, normalizeSerialNumber(serialNumber), String(notAfter.getTime()));
  }

  /** When each serial expires, as recorded (undefined where it is not). */
  async expiryOf(serialNumbers: readonly string[]): Promise<(Date | undefined)[]> {
    if (serialNumbers.length === 0) return [];
    const values = await this.#redis.hmget(this.#keys.certificateExpiry, ...serialNumbers.map(normalizeSerialNumber));
    return values.map((value) => (value === null ? undefined : new Date(Number(value))));
  }

  /**
   * Every certificate on record, soonest expiry first, those without a date last: with a holder
   * on record, and those of mailboxes recorded before holders were kept (in `issuedTo` only,
   * read a batch of mailboxes at a time).
   */
  async onRecord(): Promise<CertificateOnRecord[]> {
    const [holders, expiry, revoked, mailboxIds] = await Promise.all([
      this.#redis.hgetall(this.#keys.certificateHolders),
      this.#redis.hgetall(this.#keys.certificateExpiry),
      this.#redis.hgetall(this.#keys.revokedCertificates),
      this.#redis.smembers(this.#keys.mailboxIndex),
    ]);
    const holderOf = new Map(Object.entries(holders));
    const sets = await mapInBatches(mailboxIds, ON_RECORD_BATCH, (id) => this.#redis.smembers(this.#keys.mailboxCertificates(id)));
    mailboxIds.forEach((id, i) => {
      for (const serial of sets[i]!) if (!holderOf.has(serial)) holderOf.set(serial, id);
    });
    const at = (serial: string) => (expiry[serial] === undefined ? undefined : new Date(Number(expiry[serial])));
    return [...holderOf]
      .map(([serialNumber, holder]) => ({ serialNumber, holder, notAfter: at(serialNumber), revoked: revoked[serialNumber] !== undefined }))
      .sort(
        (a, b) =>
          (a.notAfter?.getTime() ?? Infinity) - (b.notAfter?.getTime() ?? Infinity) ||
          a.holder.localeCompare(b.holder) ||
          a.serialNumber.localeCompare(b.serialNumber),
      );
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

  /** Every revocation recorded, the earliest first, with its certificate's end where that is recorded. */
  async revocations(): Promise<readonly Revocation[]> {
    const entries = Object.entries(await this.#redis.hgetall(this.#keys.revokedCertificates));
    const ends = await this.expiryOf(entries.map(([serialNumber]) => serialNumber));
    return entries
      .map(([serialNumber, at], i) => ({ serialNumber, revokedAt: new Date(Number(at)), notAfter: ends[i] }))
      .sort((a, b) => a.revokedAt.getTime() - b.revokedAt.getTime());
  }
}
