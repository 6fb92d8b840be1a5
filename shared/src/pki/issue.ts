import { isIP } from 'node:net';
import forge from 'node-forge';
import {
  buildCertificate,
  LEAF_KEY_USAGE,
  nameAttribute,
  parseCertificateAuthority,
  type SigningAuthority,
  subjectAltNames,
} from './certificate.ts';
import { readCertificateRequest, type VerifiedCertificateRequest } from './csr.ts';
import { DEFAULT_LEAF_VALIDITY_DAYS } from './validity.ts';
import { type CertificateAndKey, generateRsaKeyPair } from './keys.ts';

/** A certificate the CA signed; `serialNumber` (lower-case hex) is what a CRL lists to revoke it. */
export interface SignedCertificate {
  readonly certPem: string;
  readonly serialNumber: string;
}

/** A signed certificate together with the private key generated for it. */
export interface IssuedCertificate extends SignedCertificate, CertificateAndKey {}

export interface ServerCertificateOptions {
  readonly ca: CertificateAndKey;
  readonly commonName: string;
  /** Every host name clients use to reach the server: TLS clients check these, not the CN. */
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly validityDays?: number;
}

/** RFC 5280's upper bound for an organisation name (ub-organization-name). */
const MAX_ORGANISATION_LENGTH = 64;

export interface MailboxCertificateOptions {
  readonly ca: CertificateAndKey;
  /** Becomes the CN, upper-cased: the server authorises the certificate for the mailbox its CN names. */
  readonly mailboxId: string;
  readonly organisation?: string | undefined;
  readonly validityDays?: number;
}

/** `client`: a mailbox's certificate (clientAuth); `server`: a meshbox server's (serverAuth, with SANs). */
export type CertificateUsage = 'client' | 'server';

export interface SignCertificateRequestOptions {
  readonly ca: CertificateAndKey;
  readonly csrPem: string;
  readonly usage: CertificateUsage;
  readonly validityDays?: number;
  /**
   * Server usage only: the SANs to certify. Default: those the request asks for, or else its CN.
   * The CA decides, so these replace (not add to) the requested ones.
   */
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
}

/** The server's certificate, with subject alternative names for every host name and IP it is reached by. */
export function issueServerCertificate(options: ServerCertificateOptions): IssuedCertificate {
  const authority = parseCertificateAuthority(options.ca);
  const keys = generateRsaKeyPair();
  const signed = signLeafCertificate(authority, {
    subject: [nameAttribute('commonName', options.commonName)],
    publicKey: keys.publicKey,
    usage: 'server',
    dnsNames: options.dnsNames,
    ipAddresses: options.ipAddresses,
    validityDays: options.validityDays,
  });
  return { ...signed, keyPem: keys.keyPem };
}

/** A mailbox's client certificate: CN is the (upper-case) mailbox id the server authorises it for. */
export function issueMailboxCertificate(options: MailboxCertificateOptions): IssuedCertificate {
  const mailboxId = options.mailboxId.trim().toUpperCase();
  if (mailboxId === '') throw new Error('a mailbox certificate needs a mailbox id');
  const authority = parseCertificateAuthority(options.ca);
  const keys = generateRsaKeyPair();
  const signed = signLeafCertificate(authority, {
    subject: [
      nameAttribute('commonName', mailboxId),
      // RFC 5280 bounds an organisation name at 64 characters: a longer one is cut, not refused.
      ...(options.organisation ? [nameAttribute('organizationName', [...options.organisation].slice(0, MAX_ORGANISATION_LENGTH).join(''))] : []),
    ],
    publicKey: keys.publicKey,
    usage: 'client',
    dnsNames: [],
    ipAddresses: [],
    validityDays: options.validityDays,
  });
  return { ...signed, keyPem: keys.keyPem };
}

/**
 * Certifies the key in a PKCS#10 request after checking the request's signature (throws if it
 * is altered or unreadable). For client usage the CN is upper-cased like a mailbox id; the
 * extensions are the CA's choice, whatever the request asks for.
 */
export function signCertificateRequest(options: SignCertificateRequestOptions): SignedCertificate {
  const authority = parseCertificateAuthority(options.ca);
  const request = readCertificateRequest(options.csrPem);
  if (options.usage === 'client') {
    return signLeafCertificate(authority, {
      subject: certifiedSubject(request, request.commonName.trim().toUpperCase()),
      publicKey: request.publicKey,
      usage: 'client',
      dnsNames: [],
      ipAddresses: [],
      validityDays: options.validityDays,
    });
  }
  return signLeafCertificate(authority, {
    subject: certifiedSubject(request, request.commonName),
    publicKey: request.publicKey,
    usage: 'server',
    ...serverNamesFor(request, options),
    validityDays: options.validityDays,
  });
}

/** The SANs of a server certificate made from a request: the CA's choice, else what was asked for, else the CN. */
function serverNamesFor(
  request: VerifiedCertificateRequest,
  options: SignCertificateRequestOptions,
): { dnsNames: readonly string[]; ipAddresses: readonly string[] } {
  if (options.dnsNames !== undefined || options.ipAddresses !== undefined) {
    return { dnsNames: options.dnsNames ?? [], ipAddresses: options.ipAddresses ?? [] };
  }
  if (request.requestedDnsNames.length + request.requestedIpAddresses.length > 0) {
    return { dnsNames: request.requestedDnsNames, ipAddresses: request.requestedIpAddresses };
  }
  return isIP(request.commonName)
    ? { dnsNames: [], ipAddresses: [request.commonName] }
    : { dnsNames: [request.commonName], ipAddresses: [] };
}

interface LeafCertificateContent {
  readonly subject: readonly forge.pki.CertificateField[];
  readonly publicKey: forge.pki.rsa.PublicKey;
  readonly usage: CertificateUsage;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly validityDays: number | undefined;
}

function signLeafCertificate(authority: SigningAuthority, content: LeafCertificateContent): SignedCertificate {
  const extensions: object[] = [{ name: 'basicConstraints', cA: false }, LEAF_KEY_USAGE];
  if (content.usage === 'server') {
    // An empty SAN extension is invalid, and without SANs no TLS client would accept the host anyway.
    if (content.dnsNames.length + content.ipAddresses.length === 0) {
      throw new Error('a server certificate needs at least one DNS name or IP address');
    }
    extensions.push(
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: subjectAltNames(content.dnsNames, content.ipAddresses) },
    );
  } else {
    extensions.push({ name: 'extKeyUsage', clientAuth: true });
  }
  const certificate = buildCertificate({
    subject: content.subject,
    publicKey: content.publicKey,
    issuer: authority,
    validityDays: content.validityDays ?? DEFAULT_LEAF_VALIDITY_DAYS,
    extensions,
  });
  return { certPem: forge.pki.certificateToPem(certificate), serialNumber: certificate.serialNumber };
}

/**
 * What of a request's subject the CA certifies: the common name (as the CA writes it) and the
 * organisation. Anything else asked for (an email address, a UID, a unit) the CA has not
 * checked, and would vouch for to whoever reads the certificate.
 */
function certifiedSubject(request: VerifiedCertificateRequest, commonName: string): forge.pki.CertificateField[] {
  return [nameAttribute('commonName', commonName), ...request.subject.filter(isOrganisation)];
}

function isOrganisation(field: forge.pki.CertificateField): boolean {
  return field.shortName === 'O' || field.name === 'organizationName' || field.type === forge.pki.oids['organizationName'];
}
