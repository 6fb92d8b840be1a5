import { generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';

/** A certificate with its private key, both PEM: what the callers write to `<name>.crt` / `<name>.key`. */
export interface CertificateAndKey {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface RsaKeyPair {
  readonly publicKey: forge.pki.rsa.PublicKey;
  readonly privateKey: forge.pki.rsa.PrivateKey;
  /** PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`), accepted by Node's tls and by OpenSSL. */
  readonly keyPem: string;
}

const RSA_MODULUS_BITS = 2048;

/**
 * A CA signs for its whole life (ten years): RSA 2048 is accepted for signing only until 2030
 * (NIST SP 800-131A), 3072 beyond. Leaf certificates (825 days) stay 2048, which every peer's
 * handshake verifies faster.
 */
export const CA_RSA_MODULUS_BITS = 3072;

/** RSA from Node's native crypto: node-forge's pure-JS generation takes seconds per key. */
export function generateRsaKeyPair(modulusLength = RSA_MODULUS_BITS): RsaKeyPair {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength });
  const keyPem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const forgeKey = forge.pki.privateKeyFromPem(keyPem);
  return { publicKey: forge.pki.setRsaPublicKey(forgeKey.n, forgeKey.e), privateKey: forgeKey, keyPem };
}

/** Smallest RSA modulus we sign a certificate for (the CSR flow lets the requester pick the key). */
export const MINIMUM_RSA_MODULUS_BITS = RSA_MODULUS_BITS;
