import { hostNameProblem, ipAddressProblem } from './host-names.ts';
import forge from 'node-forge';
import type { CertificateAndKey } from './keys.ts';
import { randomSerialNumber } from './serial-number.ts';
import { DAY_MS } from './validity.ts';

/** Peers whose clocks run a little behind must still accept a certificate (or CRL) issued just now. */
export const CLOCK_SKEW_ALLOWANCE_MS = 5 * 60 * 1000;

/** Parsed CA, ready to sign with. */
export interface SigningAuthority {
  readonly certificate: forge.pki.Certificate;
  readonly key: forge.pki.rsa.PrivateKey;
}

export interface CertificateTemplate {
  readonly subject: readonly forge.pki.CertificateField[];
  readonly publicKey: forge.pki.rsa.PublicKey;
  /** The signing CA; undefined for a self-signed certificate (then `selfSigningKey` signs it). */
  readonly issuer: SigningAuthority | undefined;
  readonly selfSigningKey?: forge.pki.rsa.PrivateKey;
  /** node-forge extension descriptions; subjectKeyIdentifier and authorityKeyIdentifier are added here. */
  readonly extensions: readonly object[];
  readonly validityDays: number;
}

/** Builds and signs (sha256WithRSAEncryption) one X.509 v3 certificate with a fresh random serial number. */
export function buildCertificate(template: CertificateTemplate): forge.pki.Certificate {
  const signingKey = template.issuer?.key ?? template.selfSigningKey;
  if (!signingKey) throw new Error('a certificate needs an issuer or a key to sign itself with');
  if (!Number.isFinite(template.validityDays) || template.validityDays <= 0) {
    throw new Error(`validityDays must be a positive number, got ${template.validityDays}`);
  }
  const certificate = forge.pki.createCertificate();
  certificate.version = 2; // X.509 v3 (the field counts from 0); extensions need it
  certificate.publicKey = template.publicKey;
  certificate.serialNumber = randomSerialNumber();
  const now = Date.now();
  const issuerEnd = template.issuer?.certificate.validity.notAfter.getTime() ?? Infinity;
  // Its certificates would be refused everywhere from the start, and end before they begin once it is 5 minutes past.
  if (issuerEnd <= now) {
    throw new Error(`the CA's certificate expired on ${new Date(issuerEnd).toISOString()}: nothing it signs is valid; make a new CA (\`meshbox admin ca init --force\`) and certificates from it`);
  }
  certificate.validity.notBefore = new Date(now - CLOCK_SKEW_ALLOWANCE_MS);
  // Never past the CA's own end: a chain stops there, whatever the leaf says (and a lifetime
  // beyond what a date can hold would throw after a mailbox was registered).
  certificate.validity.notAfter = new Date(Math.min(now + template.validityDays * DAY_MS, issuerEnd));
  certificate.setSubject([...template.subject]);
  certificate.setIssuer(template.issuer ? template.issuer.certificate.subject.attributes : [...template.subject]);
  certificate.setExtensions([
    ...template.extensions,
    { name: 'subjectKeyIdentifier' },
    ...authorityKeyIdentifierExtension(template.issuer),
  ]);
  certificate.sign(signingKey, forge.md.sha256.create());
  return certificate;
}

/**
 * OpenSSL picks the issuer of a certificate (and of a CRL) by matching this against the issuer's
 * subjectKeyIdentifier, so it must be the issuer's own value, not one recomputed here.
 */
function authorityKeyIdentifierExtension(issuer: SigningAuthority | undefined): object[] {
  if (!issuer) return [{ name: 'authorityKeyIdentifier', keyIdentifier: true }]; // self-signed: our own key id
  const issuerKeyId = subjectKeyIdentifierOf(issuer.certificate);
  return issuerKeyId === undefined ? [] : [{ name: 'authorityKeyIdentifier', keyIdentifier: issuerKeyId }];
}

/** The raw bytes (forge binary string) of a certificate's subjectKeyIdentifier, if it has one. */
export function subjectKeyIdentifierOf(certificate: forge.pki.Certificate): string | undefined {
  const extension = certificate.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
  return extension?.subjectKeyIdentifier === undefined ? undefined : forge.util.hexToBytes(extension.subjectKeyIdentifier);
}

/** What PrintableString may hold (X.680); forge writes every name attribute as one unless told otherwise. */
const PRINTABLE_STRING = /^[A-Za-z0-9 '()+,\-./:=?]*$/;
// The typings declare valueTagClass an asn1.Class, but forge reads it as the universal type (asn1.Type).
const UTF8_STRING = forge.asn1.Type.UTF8 as unknown as forge.asn1.Class;

/**
 * A subject attribute: PrintableString when the value fits it, else UTF8String. Anything else
 * ("Café", an en dash pasted from a document) written as a PrintableString makes a certificate
 * OpenSSL cannot parse.
 */
export function nameAttribute(name: string, value: string): forge.pki.CertificateField {
  return PRINTABLE_STRING.test(value) ? { name, value } : { name, value, valueTagClass: UTF8_STRING };
}

/**
 * The attributes of a name forge has parsed, ready to be written again: forge reads a
 * UTF8String's value as raw UTF-8 bytes, but UTF-8-encodes it when writing, so without
 * decoding a non-ASCII issuer or requested subject would come out encoded twice.
 */
export function reusableAttributes(attributes: readonly forge.pki.CertificateField[]): forge.pki.CertificateField[] {
  return attributes.map((attribute) =>
    attribute.valueTagClass === UTF8_STRING && typeof attribute.value === 'string'
      ? { ...attribute, value: forge.util.decodeUtf8(attribute.value) }
      : attribute,
  );
}

/** Parses the CA's certificate and key, refusing a pair that does not belong together. */
export function parseCertificateAuthority(ca: CertificateAndKey): SigningAuthority {
  const certificate = forge.pki.certificateFromPem(ca.certPem);
  // It names the issuer of what it signs (and of its CRL), so that name is written again.
  certificate.subject.attributes = reusableAttributes(certificate.subject.attributes);
  const key = forge.pki.privateKeyFromPem(ca.keyPem);
  const publicKey = certificate.publicKey as forge.pki.rsa.PublicKey;
  // Signing with the wrong key would produce certificates no peer can verify, with no error here.
  if (publicKey.n.compareTo(key.n) !== 0 || publicKey.e.compareTo(key.e) !== 0) {
    throw new Error('the CA key does not match the CA certificate');
  }
  const basicConstraints = certificate.getExtension('basicConstraints') as { cA?: boolean } | undefined;
  if (basicConstraints?.cA !== true) throw new Error('the CA certificate is not a CA (basicConstraints cA is not set)');
  return { certificate, key };
}

/** The SAN entries for these names; a name that is no host name or IP address is refused, not written malformed. */
export function subjectAltNames(dnsNames: readonly string[], ipAddresses: readonly string[]): object[] {
  for (const [values, problemOf] of [[dnsNames, hostNameProblem], [ipAddresses, ipAddressProblem]] as const) {
    for (const value of values) {
      const problem = problemOf(value);
      if (problem) throw new Error(`"${value}" cannot be certified: ${problem}`);
    }
  }
  // GeneralName choices: 2 = dNSName, 7 = iPAddress (forge encodes `ip`, IPv4 or IPv6, to bytes).
  return [...dnsNames.map((value) => ({ type: 2, value })), ...ipAddresses.map((ip) => ({ type: 7, ip }))];
}

/** keyUsage of an RSA leaf: signs the TLS handshake, and (TLS 1.2 RSA key exchange) decrypts the premaster secret. */
export const LEAF_KEY_USAGE = { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true };
