import forge from 'node-forge';
import { buildCertificate, nameAttribute } from './certificate.ts';
import { CA_RSA_MODULUS_BITS, type CertificateAndKey, generateRsaKeyPair } from './keys.ts';

export interface CertificateAuthorityOptions {
  readonly commonName: string;
  /** Default ten years: replacing the CA means reissuing every server and mailbox certificate. */
  readonly validityDays?: number;
}

const DEFAULT_CA_VALIDITY_DAYS = 3650;

/** A self-signed CA that signs the server's and the mailboxes' certificates, and the CRL. */
export function createCertificateAuthority(options: CertificateAuthorityOptions): CertificateAndKey {
  if (options.commonName.trim() === '') throw new Error('the CA needs a common name');
  const keys = generateRsaKeyPair(CA_RSA_MODULUS_BITS);
  const subject = [nameAttribute('commonName', options.commonName), nameAttribute('organizationName', 'meshbox')];
  const certificate = buildCertificate({
    subject,
    publicKey: keys.publicKey,
    issuer: undefined,
    selfSigningKey: keys.privateKey,
    validityDays: options.validityDays ?? DEFAULT_CA_VALIDITY_DAYS,
    extensions: [
      // No pathLenConstraint: meshbox has no intermediates, but an operator may want to add one.
      { name: 'basicConstraints', cA: true, critical: true },
      // Only signing: certificates and CRLs (OpenSSL refuses a CRL whose issuer lacks cRLSign).
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  return { certPem: forge.pki.certificateToPem(certificate), keyPem: keys.keyPem };
}
