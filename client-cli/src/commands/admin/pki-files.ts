import { constants } from 'node:fs';
import { access, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { RevokedCertificate } from '../../../../shared/src/pki/index.ts';
import { describeCertificate } from '../../../../shared/src/pki/inspect.ts';
import { DAY_MS, DEFAULT_LEAF_VALIDITY_DAYS } from '../../../../shared/src/pki/validity.ts';
import { listedRevocations } from '../../../../server/src/revocation-list.ts';
import { normalizeSerialNumber } from '../../../../shared/src/pki/serial-number.ts';
import { loadPki } from '../pki.ts';
import { refuseExistingFiles, writeFileAtomically } from '../../transfer/durable-files.ts';
import { countOption } from './count-option.ts';

/** The revocation list beside the CA that signs it: what MESHBOX_TLS_CRL names. */
export const CRL_FILE = 'crl.pem';

export interface PemPair {
  readonly certPem: string;
  readonly keyPem: string;
}

/**
 * Makes the folder a certificate is to be written to (`create: false`: refuses one not there),
 * before anything is registered that would then lack it.
 */
export async function prepareOutputFolder(dir: string, options: { readonly create?: boolean } = {}): Promise<void> {
  try {
    if (options.create ?? true) await mkdir(dir, { recursive: true });
    else if (!(await stat(dir)).isDirectory()) throw new Error('not a folder');
    await access(dir, constants.W_OK);
  } catch (error) {
    throw new Error(`cannot write certificates to ${dir}: ${(error as Error).message}`, { cause: error });
  }
}

/** `--days <n>` on a command that issues a certificate: how long it is valid (its value `days`). */
export function withValidityOption(command: Command): Command {
  return command.option(
    '--days <n>',
    `how many days the certificate is valid (default ${DEFAULT_LEAF_VALIDITY_DAYS}); \`admin cert list --expiring-within 30\` shows which are due for renewal`,
    countOption(1),
  );
}

/**
 * A certificate ends no later than the CA that signs it: one asked to outlive it (--days, or the
 * default) is cut to the CA's end, which would otherwise go unsaid until the day it stops working.
 */
export function warnIfCutToCaEnd(certPem: string, days: number | undefined): void {
  const asked = days ?? DEFAULT_LEAF_VALIDITY_DAYS;
  const { notAfter } = describeCertificate(certPem);
  // A minute's allowance: the certificate's dates are in whole seconds, taken a moment ago.
  if (notAfter.getTime() >= Date.now() + asked * DAY_MS - 60_000) return;
  console.error(
    `warning: the certificate ends on ${notAfter.toISOString().slice(0, 10)}, when the CA's own certificate does: sooner than the ${asked} days asked for ` +
      '(a new CA, and certificates from it, are needed before then)',
  );
}

/** What to do instead of replacing a certificate written before (it stays in use until revoked), given where `option` says to write. */
export function renewalAdvice(option: '--cert-out' | '--out'): string {
  return `give another ${option} (the certificate there keeps working until it is revoked)`;
}

/** Where `writePemPair` puts a certificate and its key. */
export function pemPairPaths(dir: string, name: string): { readonly cert: string; readonly key: string } {
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

/**
 * Writes `<name>.key` (readable by its owner only) and `<name>.crt`, each whole under a new
 * name first; never through a file or link already there, which only `replace` replaces.
 */
export async function writePemPair(
  dir: string,
  name: string,
  pair: PemPair,
  options: { readonly replace?: boolean; readonly advice?: string } = {},
): Promise<{ cert: string; key: string }> {
  await mkdir(dir, { recursive: true });
  const { cert, key } = pemPairPaths(dir, name);
  const replace = options.replace ?? false;
  if (!replace) await refuseExistingFiles([key, cert], options.advice ?? 'write to another folder, or remove it first');
  await writeFileAtomically(key, pair.keyPem, { mode: 0o600, replace });
  await writeFileAtomically(cert, pair.certPem, { replace });
  return { cert, key };
}

/**
 * Waits for a certificate this command wrote to go on record; should that fail, the files go too,
 * as if never made (off the record it could be revoked only by its serial), and the error says so.
 * Written first, then recorded: a certificate on record whose key was never written would be
 * listed as in use.
 */
export async function recordOrRemove(recording: Promise<void>, files: readonly string[], removed: string): Promise<void> {
  await recording.catch(async (error: unknown) => {
    await Promise.all(files.map((file) => rm(file, { force: true })));
    throw new Error(`the certificate could not be recorded, and ${removed}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  });
}

/**
 * Signs a fresh CRL (nextUpdate 30 days on) listing `revoked`, and puts it in place whole: a
 * server re-reading the file must never see it half-written.
 */
export async function writeRevocationList(pkiDir: string, ca: PemPair, revoked: readonly RevokedCertificate[]): Promise<string> {
  const file = join(pkiDir, CRL_FILE);
  const { createRevocationList } = await loadPki();
  await writeFileAtomically(file, createRevocationList({ ca, revoked }));
  return file;
}

/**
 * Rewrites `<pki-dir>/crl.pem` from every revocation recorded (the list leaves out those of
 * certificates long past their recorded end: `RevokedCertificate.notAfter`); the server reloads it by itself.
 * Two revocations at once could each write a list read before the other's serial was recorded,
 * the later write dropping it: so a list is written again until the revocations read after
 * writing it are those it holds. A list is never written without a serial the file lists and
 * the records lack (see `refuseUndoingListed`), unless `adopt` records those first.
 */
export async function publishRevocationList(
  pkiDir: string,
  recorded: () => Promise<readonly RevokedCertificate[]>,
  adopt?: (listed: readonly RevokedCertificate[]) => Promise<void>,
): Promise<string> {
  const ca = await readCertificateAuthority(pkiDir);
  const serials = (revocations: readonly RevokedCertificate[]): string => revocations.map((entry) => entry.serialNumber).join(' ');
  for (;;) {
    const { revocations, unrecorded } = await listedButNotRecorded(pkiDir, ca, recorded);
    if (unrecorded.length > 0) {
      if (!adopt) throw new RevocationsNotOnRecordError(unrecorded);
      await adopt(unrecorded);
      continue;
    }
    const file = await writeRevocationList(pkiDir, ca, revocations);
    if (serials(await recorded()) === serials(revocations)) return file;
  }
}

/**
 * The CRL file lists revocations these records lack: written from them, the list would let those
 * certificates in again. Admin commands pointed at another deployment's Redis or prefix (an
 * unset MESHBOX_REDIS_PREFIX, a cron job without the environment) see other records; so do
 * records put back from an older backup.
 */
export class RevocationsNotOnRecordError extends Error {
  constructor(unrecorded: readonly RevokedCertificate[]) {
    const count = unrecorded.length;
    super(
      `${CRL_FILE} lists ${count} revoked certificate${count === 1 ? '' : 's'} this deployment's records do not (serial ${unrecorded[0]!.serialNumber}${count > 1 ? ', ...' : ''}): ` +
        'are MESHBOX_REDIS_URL and MESHBOX_REDIS_PREFIX those of the deployment this PKI folder serves? A list written from these records would let them in again, so nothing was changed. ' +
        'If the records were put back from an older backup, `meshbox admin cert crl --keep-listed` records them as revoked and writes the list again',
    );
    this.name = 'RevocationsNotOnRecordError';
  }
}

/** Refuses (RevocationsNotOnRecordError) before a command records anything, when the CRL file lists revocations `recorded` lacks. */
export async function refuseUndoingListed(pkiDir: string, recorded: () => Promise<readonly RevokedCertificate[]>): Promise<void> {
  const { unrecorded } = await listedButNotRecorded(pkiDir, await readCertificateAuthority(pkiDir), recorded);
  if (unrecorded.length > 0) throw new RevocationsNotOnRecordError(unrecorded);
}

/**
 * The revocations recorded, and those the CRL file (this CA's lists in it) holds and the records
 * do not (none without a readable file of this CA). Every record counts, those the list leaves
 * out (long expired) too: a serial that drops out of the list stays on record. The file is read first: records only grow,
 * so what another admin recorded and wrote into the file meanwhile is in the records read after.
 */
async function listedButNotRecorded(
  pkiDir: string,
  ca: PemPair,
  recorded: () => Promise<readonly RevokedCertificate[]>,
): Promise<{ readonly revocations: readonly RevokedCertificate[]; readonly unrecorded: readonly RevokedCertificate[] }> {
  const listed = await listedInFile(pkiDir, ca);
  const revocations = await recorded();
  const known = new Set(revocations.map(({ serialNumber }) => normalizeSerialNumber(serialNumber)));
  return { revocations, unrecorded: listed.filter(({ serialNumber }) => !known.has(serialNumber)) };
}

async function listedInFile(pkiDir: string, ca: PemPair): Promise<RevokedCertificate[]> {
  const pem = await readFile(join(pkiDir, CRL_FILE), 'utf8').catch(() => undefined);
  if (pem === undefined) return [];
  try {
    return listedRevocations(pem, ca.certPem).flatMap(({ revoked }) => revoked);
  } catch {
    return []; // half-written, or another CA's: nothing of this CA's to keep
  }
}

/** A file an admin command was given, read whole; `what` names it in the error (e.g. `the certificate request`). */
export async function readGivenFile(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${what} ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/** The CA that `admin ca init` made in this PKI folder. */
export async function readCertificateAuthority(pkiDir: string): Promise<PemPair> {
  try {
    return {
      certPem: await readFile(join(pkiDir, 'ca.crt'), 'utf8'),
      keyPem: await readFile(join(pkiDir, 'ca.key'), 'utf8'),
    };
  } catch {
    throw new Error(`no CA in ${pkiDir} (run \`meshbox admin ca init\` first, or pass --pki-dir)`);
  }
}
