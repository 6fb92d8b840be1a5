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
 * a slow, salted hash (scrypt) of it. The salt is random and kept in the value, so no table
 * made in advance applies and two fingerprints of one key differ; the only way from one to the
 * key is to guess it, each guess costing COST, which puts a random key (`openssl rand -hex 24`)
 * out of reach and makes a dictionary of passphrases slow to try.
 */
export async function keyFingerprint(key: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  return `${VERSION}${salt.toString('base64')}:${(await hash(key, salt)).toString('base64')}`;
}

/** Whether `key` is the key `fingerprint` was made of; false for what is no fingerprint (another version's too). */
export async function fingerprintMatches(fingerprint: string, key: string): Promise<boolean> {
  const [salt, expected] = fingerprint.startsWith(VERSION) ? fingerprint.slice(VERSION.length).split(':') : [];
  if (salt === undefined || expected === undefined) return false;
  const given = Buffer.from(expected, 'base64');
  return given.length === HASH_BYTES && timingSafeEqual(given, await hash(key, Buffer.from(salt, 'base64')));
}

function hash(key: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(key, salt, HASH_BYTES, COST, (error, derived) => (error ? reject(error) : resolve(derived))));
}
