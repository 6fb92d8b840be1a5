import forge from 'node-forge';
import { buildCertificate, parseCertificateAuthority } from './certificate.ts';
import { type CertificateAndKey, generateRsaKeyPair } from './keys.ts';

export interface IssuedCertificate extends CertificateAndKey {
  readonly serialNumber: string;
}

const LEAF_KEY_USAGE = { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true };

/** The server's certificate, with subject alternative names for every host name and IP it is reached by. */
export function issueServerCertificate(options: {
  ca: CertificateAndKey;
  commonName: string;
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
  validityDays?: number;
}): IssuedCertificate {
  const authority = parseCertificateAuthority(options.ca);
  const keys = generateRsaKeyPair();
  const altNames = [
    ...options.dnsNames.map((value) => ({ type: 2, value })),
    ...options.ipAddresses.map((ip) => ({ type: 7, ip })),
  ];
  const certificate = buildCertificate({
    subject: [{ name: 'commonName', value: options.commonName }],
    publicKey: keys.publicKey,
    issuer: authority.certificate,
    signingKey: authority.key,
    validityDays: options.validityDays ?? 825,
    extensions: [
      { name: 'basicConstraints', cA: false },
      LEAF_KEY_USAGE,
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames },
    ],
  });
  return { certPem: forge.pki.certificateToPem(certificate), keyPem: keys.keyPem, serialNumber: certificate.serialNumber };
}

/** A mailbox's client certificate: CN is the (upper-case) mailbox id the server authorises it for. */
export function issueMailboxCertificate(options: {
  ca: CertificateAndKey;
  mailboxId: string;
  organisation?: string | undefined;
  validityDays?: number;
}): IssuedCertificate {
  const authority = parseCertificateAuthority(options.ca);
  const keys = generateRsaKeyPair();
  const certificate = buildCertificate({
    subject: [
      { name: 'commonName', value: options.mailboxId.toUpperCase() },
      ...(options.organisation ? [{ name: 'organizationName', value: options.organisation }] : []),
    ],
    publicKey: keys.publicKey,
    issuer: authority.certificate,
    signingKey: authority.key,
    validityDays: options.validityDays ?? 825,
    extensions: [{ name: 'basicConstraints', cA: false }, LEAF_KEY_USAGE, { name: 'extKeyUsage', clientAuth: true }],
  });
  return { certPem: forge.pki.certificateToPem(certificate), keyPem: keys.keyPem, serialNumber: certificate.serialNumber };
}
