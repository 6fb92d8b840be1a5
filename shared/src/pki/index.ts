// meshbox PKI: pure functions on PEM strings. Callers (admin CLI, setup scripts, server, tests) do the file I/O.
export { type CertificateAuthorityOptions, createCertificateAuthority } from './ca.ts';
export {
  type CertificateRequestAndKey,
  type CertificateRequestOptions,
  createCertificateRequest,
} from './csr.ts';
export { createRevocationList, type RevocationListOptions, type RevocationReason, type RevokedCertificate } from './crl.ts';
export { type CertificateDescription, describeCertificate, verifyIssuedBy } from './inspect.ts';
export {
  type CertificateUsage,
  type IssuedCertificate,
  issueMailboxCertificate,
  issueServerCertificate,
  type MailboxCertificateOptions,
  type ServerCertificateOptions,
  type SignCertificateRequestOptions,
  type SignedCertificate,
  signCertificateRequest,
} from './issue.ts';
export type { CertificateAndKey } from './keys.ts';
export { normalizeSerialNumber } from './serial-number.ts';
