import { verify, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import type { Server } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { normalizeSerialNumber } from '../../shared/src/pki/serial-number.ts';
import { closeAfterAnswers, CRL_PEM_BLOCK, secureContextOptions, tcpSocketBeneath, type TlsSettings } from './https-server.ts';

/**
 * Checks a CRL before the server gives it to OpenSSL, which otherwise fails late and
 * everywhere: a file it cannot parse throws out of `setSecureContext`, and a CRL it can
 * parse but that is past its nextUpdate, or signed by another CA, makes every client
 * handshake fail with nothing logged. Reads just enough of the DER (RFC 5280 CertificateList)
 * for that; the server does not load a PKI library.
 */
export class InvalidRevocationListError extends Error {
  override name = 'InvalidRevocationListError';
  /** When the same list may be taken after all: one refused only for being dated ahead of this machine's clock. */
  readonly takenFrom: Date | undefined;

  constructor(message: string, takenFrom?: Date) {
    super(message);
    this.takenFrom = takenFrom;
  }
}

export interface RevocationListDates {
  readonly thisUpdate: Date;
  /** Undefined when the CRL gives none (OpenSSL then never takes it for stale). */
  readonly nextUpdate: Date | undefined;
}

/** One CA's list in a CRL file: whose it is, when it was issued, and the serials it revokes. */
export interface IssuedRevocationList {
  /** The subject of the trusted CA that signed it. */
  readonly issuer: string;
  /** That CA certificate's SHA-256 fingerprint: two CAs of a rollover may share a name. */
  readonly issuerFingerprint: string;
  readonly thisUpdate: Date;
  /** Normalised hex, with their revocation dates. */
  readonly revoked: readonly { readonly serialNumber: string; readonly revokedAt: Date }[];
}

/** A CRL file as checked: the dates of the list that goes stale first, and the trusted CAs it holds no list of. */
export interface CheckedRevocationList extends RevocationListDates {
  /** Each CA's list in the file. */
  readonly lists: readonly IssuedRevocationList[];
  /**
   * Subjects of trusted CAs (MESHBOX_TLS_CA) the file holds no list of: OpenSSL refuses every
   * client certificate such a CA issued (a CA rollover needs both CAs' lists in the file). Only
   * warned of: a CA in the bundle may issue no client certificates (a root above the issuing one).
   */
  readonly unlistedCas: readonly string[];
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The hash each signature algorithm names (OID), for crypto.verify; null: the key's own (EdDSA). */
const SIGNATURE_HASHES: Readonly<Record<string, string | null>> = {
  '1.2.840.113549.1.1.5': 'sha1',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.3.101.112': null,
  '1.3.101.113': null,
};

/**
 * Every CRL in the PEM text must be one a CA in `caPem` signed and not be past its nextUpdate
 * at `now`; returns the dates of the one that goes stale first.
 */
export function checkRevocationList(crlPem: string, caPem: string, now: Date): CheckedRevocationList {
  const { cas, lists } = signedLists(crlPem, caPem);
  for (const { list } of lists) {
    if (list.thisUpdate.getTime() > now.getTime() + CLOCK_SKEW_MS) {
      const takenFrom = new Date(list.thisUpdate.getTime() - CLOCK_SKEW_MS);
      throw new InvalidRevocationListError(
        `it is dated ${list.thisUpdate.toISOString()}, in the future (its thisUpdate): OpenSSL would refuse every client until then; it is tried again from ${takenFrom.toISOString()}`,
        takenFrom,
      );
    }
    if (list.nextUpdate && list.nextUpdate <= now) {
      throw new InvalidRevocationListError(`it was due to be replaced at ${list.nextUpdate.toISOString()} (its nextUpdate): OpenSSL would refuse every client`);
    }
  }
  const staleAt = (list: RevocationListDates): number => list.nextUpdate?.getTime() ?? Infinity;
  const soonest = lists.map(({ list }) => list).reduce((kept, list) => (staleAt(list) < staleAt(kept) ? list : kept));
  const listed = new Set(lists.map(({ issuer }) => issuer));
  const unlistedCas = cas.filter((ca) => !listed.has(ca)).map(subjectOf);
  return { thisUpdate: soonest.thisUpdate, nextUpdate: soonest.nextUpdate, unlistedCas, lists: lists.map(issuedList) };
}

/** What each list in a CRL file revokes, whatever its dates (`admin cert` compares them with its records). */
export function listedRevocations(crlPem: string, caPem: string): readonly IssuedRevocationList[] {
  return signedLists(crlPem, caPem).lists.map(issuedList);
}

/** The CRLs in the PEM text, each with the CA in `caPem` that signed it (there must be one). */
function signedLists(crlPem: string, caPem: string): { cas: X509Certificate[]; lists: { list: CertificateList; issuer: X509Certificate }[] } {
  const blocks = [...crlPem.matchAll(CRL_PEM_BLOCK)].map((match) => Buffer.from(match[1]!.replace(/\s+/g, ''), 'base64'));
  if (blocks.length === 0) throw new InvalidRevocationListError('no X509 CRL in it (an empty or half-written file?)');
  const cas = [...caPem.matchAll(PEM_CERTIFICATE)].map((match) => new X509Certificate(match[0]));
  const lists = blocks.map((der) => {
    const list = readCertificateList(der);
    const issuer = cas.find((ca) => signedBy(list, ca.publicKey));
    if (!issuer) throw new InvalidRevocationListError('it is not signed by the CA the server trusts (MESHBOX_TLS_CA)');
    return { list, issuer };
  });
  return { cas, lists };
}

function issuedList({ list, issuer }: { list: CertificateList; issuer: X509Certificate }): IssuedRevocationList {
  return { issuer: subjectOf(issuer), issuerFingerprint: issuer.fingerprint256, thisUpdate: list.thisUpdate, revoked: list.revoked };
}

interface CertificateList extends RevocationListDates {
  readonly tbs: Buffer;
  readonly algorithm: string;
  readonly signature: Buffer;
  readonly revoked: IssuedRevocationList['revoked'];
}

function subjectOf(ca: X509Certificate): string {
  return ca.subject.replace(/\n/g, ', ');
}

function signedBy(list: CertificateList, key: X509Certificate['publicKey']): boolean {
  const hash = SIGNATURE_HASHES[list.algorithm];
  if (hash === undefined) throw new InvalidRevocationListError(`its signature algorithm ${list.algorithm} is not one the server checks`);
  try {
    return verify(hash, list.tbs, key, list.signature);
  } catch {
    // A key of another type than the signature's (an EC CA, an RSA-signed list).
    return false;
  }
}

/** How far a CRL's issuer's clock may run ahead of ours before its list is taken for not yet valid. */
const CLOCK_SKEW_MS = 5 * 60_000;

/** A CRL due for replacement within this long is warned of. */
const STALE_WARNING_MS = 7 * 86_400_000;

/** A CRL file's content as loaded, and what its check found (checkRevocationList). */
export interface LoadedRevocationList {
  readonly file: string;
  readonly pem: string;
  readonly dates: CheckedRevocationList;
}

export interface RevocationListReload {
  readonly intervalMs: number;
  readonly logger: Logger;
  /** A CRL was loaded (also the one the server started with). */
  readonly onLoaded?: (dates: RevocationListDates) => void;
}

/**
 * Re-reads the CRL file every `intervalMs` and, when it changed, gives new handshakes the new
 * list without a restart (`admin cert revoke` rewrites it). A new list that fails the check
 * is not loaded, and the previous one stays (said once per file content); the list loaded
 * is warned of a week before its nextUpdate and again once it has passed. `started`: the list
 * the server started with, checked by its configuration. Returns a stop function.
 */
export function reloadRevocationList(server: Server, tls: TlsSettings, started: LoadedRevocationList, reload: RevocationListReload): () => void {
  const { logger } = reload;
  const crlFile = started.file;
  let loaded = started;
  /** The list last refused, not tried again until `until` (never, when undefined): a reload sees the same file many times. */
  let refused: { readonly pem: string; readonly until: number | undefined } | undefined;
  let warned: 'soon' | 'stale' | undefined;
  const warnIfUnlisted = ({ unlistedCas }: CheckedRevocationList): void => {
    if (unlistedCas.length === 0) return;
    logger.warn(
      { crlFile, cas: unlistedCas },
      'the revocation list holds no list of a trusted CA (MESHBOX_TLS_CA): every client certificate that CA issued is refused in the handshake (a CA rollover: put both CAs\' lists in the file)',
    );
  };
  reload.onLoaded?.(loaded.dates);
  warnIfUnlisted(loaded.dates);
  // A connection busy as a list is loaded escapes closeIdleConnections, and a scraper polling
  // more often than the keep-alive time never lets it go idle: its next answer closes it.
  let listsLoaded = 0;
  const shookHandsUnder = new WeakMap<Socket, number>();
  // A connection is checked under the list of the moment it was accepted (its TLS socket takes
  // the secure context then), not of the moment its handshake ends: one accepted before a
  // reload, handshaken after it, was checked under the old list.
  const acceptedUnder = new WeakMap<Duplex, number>();
  server.on('connection', (tcp: Duplex) => acceptedUnder.set(tcp, listsLoaded));
  server.on('secureConnection', (socket: TLSSocket) => {
    const beneath = tcpSocketBeneath(socket);
    shookHandsUnder.set(socket, (beneath && acceptedUnder.get(beneath)) ?? listsLoaded);
  });
  server.prependListener('request', (request: IncomingMessage) => {
    if ((shookHandsUnder.get(request.socket) ?? listsLoaded) < listsLoaded) closeAfterAnswers(request.socket);
  });

  const load = (pem: string): void => {
    if (pem === loaded.pem || (pem === refused?.pem && (refused.until === undefined || Date.now() < refused.until))) return;
    try {
      const dates = checkRevocationList(pem, tls.ca, new Date());
      refuseOlderThanLoaded(dates, loaded.dates);
      server.setSecureContext(secureContextOptions({ ...tls, crl: pem }));
      listsLoaded += 1;
      // The list is checked in the handshake only: a kept-alive connection, idle between a
      // monitor's scrapes, would keep a certificate revoked since on the health routes (which
      // look nothing up in Redis). Closed, it must shake hands again; busy ones go after their next answer.
      server.closeIdleConnections();
      loaded = { file: crlFile, pem, dates };
      refused = undefined;
      warned = undefined;
      reload.onLoaded?.(dates);
      logger.info({ crlFile, nextUpdate: dates.nextUpdate }, 'revocation list reloaded');
      warnIfUnlisted(dates);
    } catch (error) {
      refused = { pem, until: error instanceof InvalidRevocationListError ? error.takenFrom?.getTime() : undefined };
      logger.error({ err: error, crlFile }, `revocation list not loaded: ${(error as Error).message}; keeping the previous one`);
    }
  };
  const warnIfStale = (): void => {
    const { nextUpdate } = loaded.dates;
    const left = (nextUpdate?.getTime() ?? Infinity) - Date.now();
    if (left <= 0 && warned !== 'stale') {
      warned = 'stale';
      logger.error({ crlFile, nextUpdate }, 'the revocation list is past its nextUpdate: every client is refused until a fresh one is loaded (meshbox admin cert crl)');
    } else if (left <= STALE_WARNING_MS && warned === undefined) {
      warned = 'soon';
      logger.warn({ crlFile, nextUpdate }, 'the revocation list is due for replacement within a week (meshbox admin cert crl)');
    }
  };
  // Why the file could not be read last time: logged once, not at every tick until someone mends it.
  let unreadable: string | undefined;
  const read = async (): Promise<void> => {
    const pem = await readFile(crlFile, 'utf8').catch((error: unknown) => {
      const reason = (error as NodeJS.ErrnoException).code ?? String(error);
      if (reason !== unreadable) logger.error({ err: error, crlFile }, 'cannot read the revocation list; keeping the previous one');
      unreadable = reason;
      return undefined;
    });
    if (pem !== undefined) {
      if (unreadable !== undefined) logger.info({ crlFile }, 'the revocation list can be read again');
      unreadable = undefined;
      load(pem);
    }
    // The loaded list goes stale whether or not its file can be read.
    warnIfStale();
    logger.debug({ crlFile }, 'revocation list looked at');
  };
  const timer = setInterval(() => void read(), reload.intervalMs);
  timer.unref();
  warnIfStale();
  return () => clearInterval(timer);
}

/**
 * A list older than the one loaded from the same CA that leaves out serials it revokes is
 * refused: a PKI folder put back from a backup, or another admin host's stale copy, would let
 * certificates revoked since in again through the handshake (the health routes check nothing
 * else). A newer list may leave serials out (a CA that drops expired certificates' entries).
 */
function refuseOlderThanLoaded(candidate: CheckedRevocationList, loaded: CheckedRevocationList): void {
  for (const list of candidate.lists) {
    const current = loaded.lists.find(({ issuerFingerprint }) => issuerFingerprint === list.issuerFingerprint);
    if (!current || list.thisUpdate >= current.thisUpdate) continue;
    const kept = new Set(list.revoked.map(({ serialNumber }) => serialNumber));
    const undone = current.revoked.filter(({ serialNumber }) => !kept.has(serialNumber));
    if (undone.length === 0) continue;
    throw new InvalidRevocationListError(
      `it is older than the list loaded (issued ${list.thisUpdate.toISOString()}, the loaded one ${current.thisUpdate.toISOString()}) and leaves out ` +
        `${undone.length} serial${undone.length === 1 ? '' : 's'} that one revokes (${undone[0]!.serialNumber}${undone.length > 1 ? ', ...' : ''}): ` +
        'a copy put back? `meshbox admin cert crl` writes a current one',
    );
  }
}

/** CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue BIT STRING } */
function readCertificateList(der: Buffer): CertificateList {
  try {
    const outer = element(der, 0);
    const [tbs, algorithm, signature] = children(der, outer);
    if (!tbs || !algorithm || !signature || signature.tag !== BIT_STRING) throw new Error('not a CertificateList');
    // tbsCertList: [version INTEGER], signature AlgorithmIdentifier, issuer Name, thisUpdate, [nextUpdate], ...
    const fields = children(der, tbs);
    const afterVersion = fields[0]?.tag === INTEGER ? fields.slice(1) : fields;
    const [, , thisUpdate, nextUpdate, ...rest] = afterVersion;
    if (!thisUpdate) throw new Error('no thisUpdate');
    // revokedCertificates SEQUENCE OF SEQUENCE { userCertificate INTEGER, revocationDate Time, ... }, left out when empty.
    const revokedList = [...(nextUpdate && !isTime(nextUpdate) ? [nextUpdate] : []), ...rest].find((item) => item.tag === SEQUENCE);
    const revoked = (revokedList ? children(der, revokedList) : []).map((entry) => {
      const [serial, revokedAt] = children(der, entry);
      if (serial?.tag !== INTEGER || !revokedAt) throw new Error('an unreadable revoked certificate entry');
      return { serialNumber: normalizeSerialNumber(der.subarray(serial.contentStart, serial.end).toString('hex')), revokedAt: time(der, revokedAt) };
    });
    const [algorithmOid] = children(der, algorithm);
    if (!algorithmOid || algorithmOid.tag !== OBJECT_IDENTIFIER) throw new Error('no signature algorithm');
    return {
      tbs: der.subarray(tbs.start, tbs.end),
      algorithm: objectIdentifier(der.subarray(algorithmOid.contentStart, algorithmOid.end)),
      // The first content byte counts the unused bits of the last: 0 for a signature.
      signature: der.subarray(signature.contentStart + 1, signature.end),
      thisUpdate: time(der, thisUpdate),
      nextUpdate: nextUpdate && isTime(nextUpdate) ? time(der, nextUpdate) : undefined,
      revoked,
    };
  } catch (error) {
    if (error instanceof InvalidRevocationListError) throw error;
    throw new InvalidRevocationListError(`it cannot be read as a CRL (${(error as Error).message})`);
  }
}

const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OBJECT_IDENTIFIER = 0x06;
const SEQUENCE = 0x30;
const UTC_TIME = 0x17;
const GENERALIZED_TIME = 0x18;

/** One DER element: its tag, where it starts, where its content starts, and where it ends. */
interface Element {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

function element(der: Buffer, start: number): Element {
  const tag = der[start];
  let lengthByte = der[start + 1];
  if (tag === undefined || lengthByte === undefined) throw new Error('truncated');
  let contentStart = start + 2;
  let length = lengthByte;
  if (lengthByte & 0x80) {
    const octets = lengthByte & 0x7f;
    if (octets === 0 || octets > 4) throw new Error('unsupported length');
    length = 0;
    for (let i = 0; i < octets; i++) {
      lengthByte = der[contentStart + i];
      if (lengthByte === undefined) throw new Error('truncated');
      length = length * 256 + lengthByte;
    }
    contentStart += octets;
  }
  const end = contentStart + length;
  if (end > der.length) throw new Error('truncated');
  return { tag, start, contentStart, end };
}

function children(der: Buffer, parent: Element): Element[] {
  const found: Element[] = [];
  for (let at = parent.contentStart; at < parent.end; at = found.at(-1)!.end) found.push(element(der, at));
  return found;
}

function objectIdentifier(bytes: Buffer): string {
  const arcs: number[] = [];
  let value = 0;
  for (const byte of bytes) {
    value = value * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      arcs.push(value);
      value = 0;
    }
  }
  const [first = 0, ...rest] = arcs;
  const top = Math.min(Math.floor(first / 40), 2);
  return [top, first - top * 40, ...rest].join('.');
}

function isTime(item: Element): boolean {
  return item.tag === UTC_TIME || item.tag === GENERALIZED_TIME;
}

/** UTCTime YYMMDDHHMMSSZ (years 1950–2049) or GeneralizedTime YYYYMMDDHHMMSSZ. */
function time(der: Buffer, item: Element): Date {
  if (!isTime(item)) throw new Error('expected a time');
  const text = der.subarray(item.contentStart, item.end).toString('latin1');
  const match = /^(\d{2}|\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!match || match[1]!.length !== (item.tag === UTC_TIME ? 2 : 4)) throw new Error(`unreadable time ${text}`);
  const year = item.tag === UTC_TIME ? (Number(match[1]) < 50 ? 2000 : 1900) + Number(match[1]) : Number(match[1]);
  const at = new Date(Date.UTC(year, Number(match[2]) - 1, Number(match[3]), Number(match[4]), Number(match[5]), Number(match[6])));
  if (Number.isNaN(at.getTime())) throw new Error(`unreadable time ${text}`);
  return at;
}
