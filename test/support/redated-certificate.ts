import { randomBytes } from 'node:crypto';
import forge from 'node-forge';
import type { CertificateAndKey } from '../../shared/src/pki/keys.ts';

/**
 * `certPem` signed again by `ca` with other dates, for certificates the PKI does not issue: one
 * that ended long ago, or has not begun yet (it dates every certificate from now).
 */
export function redatedCertificate(ca: CertificateAndKey, certPem: string, validity: { readonly notBefore: Date; readonly notAfter: Date }): string {
  const original = forge.pki.certificateFromPem(certPem);
  const certificate = forge.pki.createCertificate();
  certificate.version = original.version;
  certificate.publicKey = original.publicKey;
  // Positive: a leading byte below 0x80.
  certificate.serialNumber = `01${randomBytes(15).toString('hex')}`;
  certificate.validity.notBefore = validity.notBefore;
  certificate.validity.notAfter = validity.notAfter;
  certificate.setSubject(original.subject.attributes);
  certificate.setIssuer(forge.pki.certificateFromPem(ca.certPem).subject.attributes);
  certificate.setExtensions(original.extensions);
  certificate.sign(forge.pki.privateKeyFromPem(ca.keyPem), forge.md.sha256.create());
  return forge.pki.certificateToPem(certificate);
}
