import forge from 'node-forge';
import { buildCertificate } from './certificate.ts';
import { type CertificateAndKey, generateRsaKeyPair } from './keys.ts';

/** A self-signed CA that signs server and mailbox certificates (and later CRLs). */
export function createCertificateAuthority(options: { commonName: string; validityDays?: number }): CertificateAndKey {
  const keys = generateRsaKeyPair();
  const subject = [
    { name: 'commonName', value: options.commonName },
    { name: 'organizationName', value: 'meshbox' },
  ];
  const certificate = buildCertificate({
    subject,
    publicKey: keys.publicKey,
    issuer: undefined,
    signingKey: keys.privateKey,
    validityDays: options.validityDays ?? 3650,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  return { certPem: forge.pki.certificateToPem(certificate), keyPem: keys.keyPem };
}
