import forge from 'node-forge';
import { type CertificateAndKey, randomSerialNumber } from './keys.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
// Peers whose clocks run a little behind must still accept a certificate issued just now.
const BACKDATE_MS = 5 * 60 * 1000;

export interface IssueOptions {
  readonly subject: forge.pki.CertificateField[];
  readonly publicKey: forge.pki.PublicKey;
  /** The signer; undefined for a self-signed certificate (then `signingKey` is its own key). */
  readonly issuer: forge.pki.Certificate | undefined;
  readonly signingKey: forge.pki.PrivateKey;
  readonly extensions: object[];
  readonly validityDays: number;
}

/** Builds and signs (sha256) one X.509 v3 certificate. */
export function buildCertificate(options: IssueOptions): forge.pki.Certificate {
  const certificate = forge.pki.createCertificate();
  certificate.publicKey = options.publicKey;
  certificate.serialNumber = randomSerialNumber();
  const now = Date.now();
  certificate.validity.notBefore = new Date(now - BACKDATE_MS);
  certificate.validity.notAfter = new Date(now + options.validityDays * DAY_MS);
  certificate.setSubject(options.subject);
  certificate.setIssuer(options.issuer ? options.issuer.subject.attributes : options.subject);
  // Must equal the issuer's own subjectKeyIdentifier, or OpenSSL cannot find the issuer.
  const issuerKeyId = (options.issuer?.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined)
    ?.subjectKeyIdentifier;
  const authorityKeyIdentifier = issuerKeyId
    ? [{ name: 'authorityKeyIdentifier', keyIdentifier: forge.util.hexToBytes(issuerKeyId) }]
    : [];
  certificate.setExtensions([...options.extensions, { name: 'subjectKeyIdentifier' }, ...authorityKeyIdentifier]);
  certificate.sign(options.signingKey as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return certificate;
}

export function parseCertificateAuthority(ca: CertificateAndKey): { certificate: forge.pki.Certificate; key: forge.pki.PrivateKey } {
  return { certificate: forge.pki.certificateFromPem(ca.certPem), key: forge.pki.privateKeyFromPem(ca.keyPem) };
}
