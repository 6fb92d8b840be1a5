import { createHash, X509Certificate } from 'node:crypto';
import { normalizeSerialNumber } from './serial-number.ts';

export interface CertificateDescription {
  /** Undefined when the subject has no CN (never for certificates meshbox issues). */
  readonly subjectCommonName: string | undefined;
  /** Lower-case hex, the same spelling as `IssuedCertificate.serialNumber` and the CRL input. */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly issuerCommonName: string | undefined;
  /** As OpenSSL prints it (`DNS:mesh.example.org, IP Address:10.0.0.5`); undefined when it has none. */
  readonly subjectAltName: string | undefined;
}

// Node's X509Certificate rather than node-forge: it reads any key type (forge only RSA) and is native.

/** The fields an admin needs to recognise a certificate. Throws if the PEM is not a certificate. */
export function describeCertificate(certPem: string): CertificateDescription {
  const certificate = new X509Certificate(certPem);
  const { subject, issuer } = certificate.toLegacyObject();
  return {
    subjectCommonName: firstValue(subject?.CN),
    serialNumber: normalizeSerialNumber(certificate.serialNumber),
    notBefore: certificate.validFromDate,
    notAfter: certificate.validToDate,
    issuerCommonName: firstValue(issuer?.CN),
    subjectAltName: certificate.subjectAltName,
  };
}

/**
 * What tells certificates of one key, hex: SHA-256 of an RSA key's modulus, which is the key
 * (the same primes with another public exponent are the same private key), else of the whole
 * public key (its DER SubjectPublicKeyInfo).
 */
export function publicKeyFingerprint(certPem: string): string {
  const key = new X509Certificate(certPem).publicKey;
  const modulus = key.asymmetricKeyType === 'rsa' ? key.export({ format: 'jwk' }).n : undefined;
  return createHash('sha256').update(modulus ?? key.export({ type: 'spki', format: 'der' })).digest('hex');
}

/**
 * Whether `caCertPem` signed `certPem`: names and key identifiers match and the signature checks.
 * Says nothing about validity dates or revocation. Throws if either PEM is not a certificate.
 */
export function verifyIssuedBy(certPem: string, caCertPem: string): boolean {
  const certificate = new X509Certificate(certPem);
  const authority = new X509Certificate(caCertPem);
  return certificate.checkIssued(authority) && certificate.verify(authority.publicKey);
}

/** A name can hold an attribute more than once; Node then gives an array. */
function firstValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
