export { createCertificateAuthority } from './ca.ts';
export { type IssuedCertificate, issueMailboxCertificate, issueServerCertificate } from './issue.ts';
export type { CertificateAndKey } from './keys.ts';
