import forge from 'node-forge';
import { generateRsaKeyPair, MINIMUM_RSA_MODULUS_BITS } from './keys.ts';
import { nameAttribute, reusableAttributes, subjectAltNames } from './certificate.ts';

const MINIMUM_RSA_EXPONENT = new forge.jsbn.BigInteger('65537');

export interface CertificateRequestOptions {
  /** For a mailbox, its id; for a server, its main host name. */
  readonly commonName: string;
  readonly organisation?: string | undefined;
  /** Host names and IPs a server certificate should carry (the CA may override them). */
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
}

/** A PKCS#10 request and the private key it was made for; the key never leaves the requester. */
export interface CertificateRequestAndKey {
  readonly csrPem: string;
  readonly keyPem: string;
}

/** A PKCS#10 certificate signing request (sha256, RSA 2048), so a key can be certified without sending it to the CA. */
export function createCertificateRequest(options: CertificateRequestOptions): CertificateRequestAndKey {
  if (options.commonName.trim() === '') throw new Error('a certificate request needs a common name');
  const keys = generateRsaKeyPair();
  const request = forge.pki.createCertificationRequest();
  request.publicKey = keys.publicKey;
  request.setSubject([
    nameAttribute('commonName', options.commonName),
    ...(options.organisation ? [nameAttribute('organizationName', options.organisation)] : []),
  ]);
  const altNames = subjectAltNames(options.dnsNames ?? [], options.ipAddresses ?? []);
  if (altNames.length > 0) {
    request.setAttributes([{ name: 'extensionRequest', extensions: [{ name: 'subjectAltName', altNames }] }]);
  }
  request.sign(keys.privateKey, forge.md.sha256.create());
  return { csrPem: forge.pki.certificationRequestToPem(request), keyPem: keys.keyPem };
}

/** What the CA takes from a request it has checked. */
export interface VerifiedCertificateRequest {
  readonly subject: readonly forge.pki.CertificateField[];
  readonly commonName: string;
  readonly publicKey: forge.pki.rsa.PublicKey;
  /** Subject alternative names the requester asked for (only a server certificate uses them). */
  readonly requestedDnsNames: readonly string[];
  readonly requestedIpAddresses: readonly string[];
}

/**
 * Parses a CSR and checks its self-signature: that proves the requester holds the private key,
 * and that nobody altered the subject or key after it was signed. Throws when any check fails.
 */
export function readCertificateRequest(csrPem: string): VerifiedCertificateRequest {
  let request: forge.pki.CertificateSigningRequest;
  try {
    request = forge.pki.certificationRequestFromPem(csrPem);
  } catch (error) {
    // forge reads only RSA keys; an EC request also ends up here.
    const reason = /OID is not RSA/.test((error as Error).message) ? 'its key is not RSA, and meshbox signs RSA keys only (e.g. `openssl req -newkey rsa:2048`)' : (error as Error).message;
    throw new Error(`unreadable certificate request: ${reason}`, { cause: error });
  }
  let signatureValid: boolean;
  try {
    signatureValid = request.verify();
  } catch (error) {
    throw new Error(`certificate request signature cannot be checked: ${(error as Error).message}`, { cause: error });
  }
  if (!signatureValid) throw new Error('certificate request signature is invalid (altered, or not signed by its key)');
  const publicKey = request.publicKey as forge.pki.rsa.PublicKey | null;
  if (!publicKey) throw new Error('certificate request has no public key');
  if (publicKey.n.bitLength() < MINIMUM_RSA_MODULUS_BITS) {
    const bits = publicKey.n.bitLength();
    throw new Error(`certificate request key is RSA ${bits}: at least ${MINIMUM_RSA_MODULUS_BITS} bits required`);
  }
  // NIST's bounds (SP 800-56B, FIPS 186): a small exponent weakens the key, and 1 makes it none,
  // its "signature" the message itself, which anyone holding the certificate can give.
  if (!publicKey.e.testBit(0) || publicKey.e.compareTo(MINIMUM_RSA_EXPONENT) < 0 || publicKey.e.bitLength() > 256) {
    throw new Error(`certificate request key has RSA exponent ${publicKey.e.toString(10)}: an odd one from 65537 to 2^256 is required`);
  }
  const subject = readableSubject(request);
  const commonNames = subject.filter((field) => field.shortName === 'CN');
  // The certificate would carry them all, and the server, reading one, would refuse it.
  if (commonNames.length > 1) throw new Error(`certificate request has ${commonNames.length} subject common names: give one (the mailbox id, or the server's name)`);
  const commonNameField = commonNames[0];
  const commonName = typeof commonNameField?.value === 'string' ? commonNameField.value : '';
  if (commonName.trim() === '') throw new Error('certificate request has no subject common name');
  const requested = requestedSubjectAltNames(request);
  return {
    subject,
    commonName,
    publicKey,
    requestedDnsNames: requested.dnsNames,
    requestedIpAddresses: requested.ipAddresses,
  };
}

function readableSubject(request: forge.pki.CertificateSigningRequest): forge.pki.CertificateField[] {
  try {
    return reusableAttributes(request.subject.attributes);
  } catch (error) {
    throw new Error(`certificate request subject is not valid UTF-8: ${(error as Error).message}`, { cause: error });
  }
}

function requestedSubjectAltNames(request: forge.pki.CertificateSigningRequest): { dnsNames: string[]; ipAddresses: string[] } {
  const extensionRequest = request.getAttribute({ name: 'extensionRequest' }) as { extensions?: unknown[] } | null;
  const altNameExtension = (extensionRequest?.extensions ?? []).find(
    (extension): extension is { altNames?: { type: number; value?: string; ip?: string }[] } =>
      (extension as { name?: string }).name === 'subjectAltName',
  );
  const altNames = altNameExtension?.altNames ?? [];
  return {
    dnsNames: altNames.flatMap((name) => (name.type === 2 && name.value ? [name.value] : [])),
    ipAddresses: altNames.flatMap((name) => (name.type === 7 && name.ip ? [name.ip] : [])),
  };
}
