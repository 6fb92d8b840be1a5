import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

const VERSION = 'v1:';
/** What a key check value decrypts to. */
const KEY_CHECK_TEXT = 'meshbox secret key check';
/** More than England's MESH mailboxes; beyond it the oldest entry goes. */
const DECRYPTED_CACHE_SIZE = 50_000;

/**
 * Mailbox passwords at rest. The NHSMESH token is an HMAC over the password, so the server
 * needs the password itself and cannot keep only a salted hash; instead it keeps it encrypted
 * (AES-256-GCM) under a key derived from the server's own secret (MESHBOX_SECRET_KEY, never
 * given to clients — unlike the shared key). A Redis dump or replica alone reveals no password.
 */
export class PasswordCipher {
  readonly #key: Buffer;
  /**
   * Every request decrypts its mailbox's password to check the token; remembering the result
   * per stored value saves a cipher setup on each. The server holds the key that decrypts them
   * anyway, and a changed password is a new stored value (fresh IV), so nothing goes stale.
   */
  readonly #decrypted = new Map<string, string>();

  constructor(secret: string) {
    this.#key = Buffer.from(hkdfSync('sha256', secret, 'meshbox', 'mailbox passwords', 32));
  }

  encrypt(password: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    const ciphertext = Buffer.concat([cipher.update(password, 'utf8'), cipher.final()]);
    return VERSION + Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64');
  }

  /** Throws when the value was not encrypted with this secret (a wrong MESHBOX_SECRET_KEY). */
  decrypt(stored: string): string {
    const known = this.#decrypted.get(stored);
    if (known !== undefined) return known;
    const password = this.#decryptAfresh(stored);
    if (this.#decrypted.size >= DECRYPTED_CACHE_SIZE) this.#decrypted.delete(this.#decrypted.keys().next().value!);
    this.#decrypted.set(stored, password);
    return password;
  }

  /** Whether `stored` was encrypted with this secret. */
  decrypts(stored: string): boolean {
    return this.#decryptedOrUndefined(stored) !== undefined;
  }

  /** A value only this secret decrypts to the check text: kept once, it tells a later process whether its secret is the same. */
  keyCheckValue(): string {
    return this.encrypt(KEY_CHECK_TEXT);
  }

  isKeyCheckValue(stored: string): boolean {
    return this.#decryptedOrUndefined(stored) === KEY_CHECK_TEXT;
  }

  #decryptedOrUndefined(stored: string): string | undefined {
    try {
      return this.decrypt(stored);
    } catch {
      return undefined;
    }
  }

  #decryptAfresh(stored: string): string {
    if (!stored.startsWith(VERSION)) throw new Error('mailbox password is not encrypted in a known format');
    const data = Buffer.from(stored.slice(VERSION.length), 'base64');
    const decipher = createDecipheriv('aes-256-gcm', this.#key, data.subarray(0, 12));
    decipher.setAuthTag(data.subarray(12, 28));
    return Buffer.concat([decipher.update(data.subarray(28)), decipher.final()]).toString('utf8');
  }
}
