import { sign } from 'node:crypto';
import forge from 'node-forge';
import { CLOCK_SKEW_ALLOWANCE_MS, parseCertificateAuthority, subjectKeyIdentifierOf } from './certificate.ts';
import type { CertificateAndKey } from './keys.ts';
import { normalizeSerialNumber } from './serial-number.ts';
import { DAY_MS } from './validity.ts';

/** RFC 5280 CRLReason values a meshbox admin has reason to use ("unspecified" is expressed by giving none). */
export type RevocationReason =
  | 'keyCompromise'
  | 'cACompromise'
  | 'affiliationChanged'
  | 'superseded'
  | 'cessationOfOperation'
  | 'privilegeWithdrawn';

const REVOCATION_REASON_CODES: Readonly<Record<RevocationReason, number>> = {
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  privilegeWithdrawn: 9,
};

export interface RevokedCertificate {
  /** Hex, any case, colons allowed (as `describeCertificate`, Node or OpenSSL print it). */
  readonly serialNumber: string;
  readonly revokedAt: Date;
  readonly reason?: RevocationReason;
  /**
   * The revoked certificate's end, where it is known: once it is further past than a list's
   * lifetime (`nextUpdateDays`), the entry is left out. The TLS handshake refuses an expired
   * certificate anyway, and a list keeping every revocation ever made would only grow. Where it
   * is not known (or not a date), the entry is always listed.
   */
  readonly notAfter?: Date | undefined;
}

export interface RevocationListOptions {
  readonly ca: CertificateAndKey;
  /** Every revocation: those of certificates long expired are left out (see `RevokedCertificate.notAfter`). */
  readonly revoked: readonly RevokedCertificate[];
  /**
   * Default 30. OpenSSL refuses EVERY client certificate once a loaded CRL is past its
   * nextUpdate, so the server must be given a fresh CRL before then.
   */
  readonly nextUpdateDays?: number;
  /**
   * RFC 5280 wants a number that grows with each CRL the CA issues. Default: the issue time in
   * milliseconds, which grows without the caller having to keep a counter.
   */
  readonly crlNumber?: bigint | number;
  /** Issue time; default now. */
  readonly issuedAt?: Date;
}

const DEFAULT_NEXT_UPDATE_DAYS = 30;

const OID = {
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  cRLNumber: '2.5.29.20',
  reasonCode: '2.5.29.21',
  authorityKeyIdentifier: '2.5.29.35',
} as const;

const { Class, Type } = forge.asn1;

/**
 * A version 2 X.509 CRL (PEM, `BEGIN X509 CRL`) signed by the CA, for Node's
 * `tls.createSecureContext({ crl })`. node-forge cannot write CRLs, so the RFC 5280
 * CertificateList is assembled here with forge.asn1 and signed with Node's crypto.
 */
export function createRevocationList(options: RevocationListOptions): string {
  const authority = parseCertificateAuthority(options.ca);
  const issuedAtExactly = options.issuedAt ?? new Date();
  const issuedAt = wholeSeconds(issuedAtExactly);
  // Backdated like certificates: a verifier whose clock is behind rejects a CRL "not yet valid".
  const thisUpdate = new Date(issuedAt.getTime() - CLOCK_SKEW_ALLOWANCE_MS);
  const nextUpdateDays = options.nextUpdateDays ?? DEFAULT_NEXT_UPDATE_DAYS;
  if (!Number.isFinite(nextUpdateDays) || nextUpdateDays <= 0) {
    throw new Error(`nextUpdateDays must be positive, got ${nextUpdateDays}`);
  }
  const nextUpdate = new Date(issuedAt.getTime() + nextUpdateDays * DAY_MS);
  // By default the issue time in milliseconds: each list numbered above the last (RFC 5280), also
  // two issued within a second (two admins revoking at once), which seconds would number alike.
  const crlNumber = BigInt(options.crlNumber ?? issuedAtExactly.getTime()); // throws for a fraction
  if (crlNumber < 0n) throw new Error('crlNumber must not be negative');

  const signatureAlgorithm = sequence([
    oid(OID.sha256WithRSAEncryption),
    forge.asn1.create(Class.UNIVERSAL, Type.NULL, false, ''), // parameters: NULL, as RFC 4055 requires for RSA
  ]);
  const tbsFields: forge.asn1.Asn1[] = [
    integerFromBigInt(1n), // v2: required because the CRL has extensions
    signatureAlgorithm,
    forge.pki.distinguishedNameToAsn1(authority.certificate.subject),
    time(thisUpdate),
    time(nextUpdate),
  ];
  // Kept for a lifetime past the certificate's end, so that the first list issued after that end
  // still has it (RFC 5280, 5.1.2.6), given that lists are re-issued before they go stale.
  // An unreadable date (NaN) compares false: such an entry stays.
  const endedLongAgo = (entry: RevokedCertificate): boolean => entry.notAfter !== undefined && entry.notAfter.getTime() + nextUpdateDays * DAY_MS < thisUpdate.getTime();
  const listed = options.revoked.filter((entry) => !endedLongAgo(entry));
  // RFC 5280: with nothing revoked the list is left out entirely, not encoded empty.
  if (listed.length > 0) tbsFields.push(sequence(listed.map(revokedEntry)));
  tbsFields.push(explicitTag(0, sequence(crlExtensions(authority.certificate, crlNumber))));
  const tbsCertList = sequence(tbsFields);

  const tbsDer = Buffer.from(forge.asn1.toDer(tbsCertList).getBytes(), 'binary');
  // RSASSA-PKCS1-v1_5 over SHA-256 (Node's default padding for an RSA key), as the algorithm identifier says.
  const signature = sign('sha256', tbsDer, options.ca.keyPem);
  const certificateList = sequence([
    tbsCertList,
    signatureAlgorithm,
    forge.asn1.create(Class.UNIVERSAL, Type.BITSTRING, false, `\x00${signature.toString('binary')}`), // 0 unused bits
  ]);
  return forge.pem.encode({ type: 'X509 CRL', body: forge.asn1.toDer(certificateList).getBytes() });
}

function revokedEntry(revoked: RevokedCertificate): forge.asn1.Asn1 {
  if (!(revoked.revokedAt instanceof Date) || Number.isNaN(revoked.revokedAt.getTime())) {
    throw new Error(`invalid revocation date for serial number ${revoked.serialNumber}`);
  }
  const fields = [integerFromHex(normalizeSerialNumber(revoked.serialNumber)), time(wholeSeconds(revoked.revokedAt))];
  if (revoked.reason !== undefined) {
    const code = REVOCATION_REASON_CODES[revoked.reason];
    const reasonCode = forge.asn1.create(Class.UNIVERSAL, Type.ENUMERATED, false, String.fromCharCode(code));
    fields.push(sequence([extension(OID.reasonCode, reasonCode)]));
  }
  return sequence(fields);
}

function crlExtensions(caCertificate: forge.pki.Certificate, crlNumber: bigint): forge.asn1.Asn1[] {
  const extensions = [extension(OID.cRLNumber, integerFromBigInt(crlNumber))];
  // OpenSSL matches a CRL to its issuer by name and, when present, by this key id.
  const keyIdentifier = subjectKeyIdentifierOf(caCertificate);
  if (keyIdentifier !== undefined) {
    const authorityKeyIdentifier = sequence([forge.asn1.create(Class.CONTEXT_SPECIFIC, 0, false, keyIdentifier)]);
    extensions.unshift(extension(OID.authorityKeyIdentifier, authorityKeyIdentifier));
  }
  return extensions;
}

/** Extension ::= SEQUENCE { extnID, critical DEFAULT FALSE (so left out), extnValue OCTET STRING (DER of the value) } */
function extension(extensionOid: string, value: forge.asn1.Asn1): forge.asn1.Asn1 {
  const extnValue = forge.asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, forge.asn1.toDer(value).getBytes());
  return sequence([oid(extensionOid), extnValue]);
}

function sequence(items: forge.asn1.Asn1[]): forge.asn1.Asn1 {
  return forge.asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, items);
}

function oid(dotted: string): forge.asn1.Asn1 {
  return forge.asn1.create(Class.UNIVERSAL, Type.OID, false, forge.asn1.oidToDer(dotted).getBytes());
}

function explicitTag(tagNumber: number, inner: forge.asn1.Asn1): forge.asn1.Asn1 {
  return forge.asn1.create(Class.CONTEXT_SPECIFIC, tagNumber, true, [inner]);
}

function integerFromBigInt(value: bigint): forge.asn1.Asn1 {
  return integerFromHex(value.toString(16));
}

/** A non-negative INTEGER in minimal DER: no leading zero bytes, plus a 00 when the top bit would read as a sign. */
function integerFromHex(hex: string): forge.asn1.Asn1 {
  let magnitude = normalizeSerialNumber(hex);
  if (Number.parseInt(magnitude.slice(0, 2), 16) >= 0x80) magnitude = `00${magnitude}`;
  return forge.asn1.create(Class.UNIVERSAL, Type.INTEGER, false, forge.util.hexToBytes(magnitude));
}

/** RFC 5280 Time: UTCTime through 2049, GeneralizedTime from 2050. */
function time(date: Date): forge.asn1.Asn1 {
  return date.getUTCFullYear() < 2050
    ? forge.asn1.create(Class.UNIVERSAL, Type.UTCTIME, false, forge.asn1.dateToUtcTime(date))
    : forge.asn1.create(Class.UNIVERSAL, Type.GENERALIZEDTIME, false, forge.asn1.dateToGeneralizedTime(date));
}

/** DER times carry no fractions of a second. */
function wholeSeconds(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}
