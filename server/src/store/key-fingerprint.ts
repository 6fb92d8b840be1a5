import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

const VERSION = 'scrypt1:';
/**
 * OWASP's scrypt settings for passwords (N = 2^15, r = 8, p = 3: 32 MiB, a quarter of a second
 * of a core): a key may be a passphrase, and whoever reads Redis must pay this for each guess.
 * Memory-hard, so a GPU or ASIC gains little over a CPU. A change of them is a new VERSION.
 */
const COST = { N: 2 ** 15, r: 8, p: 3, maxmem: 64 * 1024 * 1024 } as const;
const SALT_BYTES = 16;
const HASH_BYTES = 32;

/**
 * A value that tells whether another holder of a key has the same key, and nothing else of it:
 * a slow, salted hash (scrypt) of it. The salt is random (or that of `sameSaltAs`, another
 * fingerprint: holders under one salt tell a match by comparing their fingerprints, without a
 * hash each) and kept in the value, so no table made in advance applies; the only way from one
 * to the key is to guess it, each guess costing COST, which puts a random key (`openssl rand
 * -hex 24`) out of reach and makes a dictionary of passphrases slow to try.
 */
export async function keyFingerprint(key: string, sameSaltAs?: string): Promise<string> {
  const salt = (sameSaltAs === undefined ? undefined : parts(sameSaltAs)?.salt) ?? randomBytes(SALT_BYTES);
  return `${VERSION}${salt.toString('base64')}:${(await hash(key, salt)).toString('base64')}`;
}

/** Whether `key` is the key `fingerprint` was made of; false for what is no fingerprint (another version's too). */
export async function fingerprintMatches(fingerprint: string, key: string): Promise<boolean> {
  const given = parts(fingerprint);
  return given !== undefined && given.hash.length === HASH_BYTES && timingSafeEqual(given.hash, await hash(key, given.salt));
}

function parts(fingerprint: string): { readonly salt: Buffer; readonly hash: Buffer } | undefined {
  const [salt, hashed] = fingerprint.startsWith(VERSION) ? fingerprint.slice(VERSION.length).split(':') : [];
  return salt === undefined || hashed === undefined ? undefined : { salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hashed, 'base64') };
}

function hash(key: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(key, salt, HASH_BYTES, COST, (error, derived) => (error ? reject(error) : resolve(derived))));
}
