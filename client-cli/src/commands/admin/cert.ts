import { isIPv6 } from 'node:net';
import { dirname } from 'node:path';
import { type Command, Option } from 'commander';
import type { RevokedCertificate } from '../../../../shared/src/pki/index.ts';
import { describeCertificate, publicKeyFingerprint } from '../../../../shared/src/pki/inspect.ts';
import { dayCount, daysLeft } from '../../../../shared/src/pki/validity.ts';
import { normalizeSerialNumber } from '../../../../shared/src/pki/serial-number.ts';
import { mailboxIdOf, parseMailboxId } from '../../../../shared/src/protocol/index.ts';
import { printableJson, printableLine } from '../../client/untrusted-text.ts';
import { loadPki } from '../pki.ts';
import { type AdminStores, auditIfReachable, withAdminStores } from './admin-context.ts';
import { countOption } from './count-option.ts';
import { dnsNameOption, ipAddressOption } from './host-options.ts';
import { refuseExistingFiles, writeFileAtomically } from '../../transfer/durable-files.ts';
import { CRL_FILE, pemPairPaths, prepareOutputFolder, publishRevocationList, refuseUndoingListed, readCertificateAuthority, readGivenFile, recordOrRemove, renewalAdvice, warnIfCutToCaEnd, withValidityOption, writePemPair } from './pki-files.ts';

interface RevocationTarget {
  /** What the audit log names: the mailbox, or else the serial. */
  readonly subject: string;
  readonly serials: readonly string[];
}

/**
 * Every recorded certificate of the mailbox `target` names, or else the serial it is, if this
 * CA's records show it issued (`unrecorded`: any serial). A mistyped mailbox id can look like a
 * serial (FACADE02): revoking it would change nothing, and say it had.
 */
async function revocationTarget(stores: AdminStores, target: string, unrecorded: boolean): Promise<RevocationTarget> {
  // Only ASCII is upper-cased: `ſx01` names no mailbox, where toUpperCase would make it SX01's.
  const mailboxId = mailboxIdOf(target);
  const issued = mailboxId === undefined ? [] : await stores.certificates.issuedTo(mailboxId);
  if (mailboxId !== undefined && issued.length > 0) return { subject: mailboxId, serials: issued };
  const registered = mailboxId !== undefined && (await stores.mailboxes.get(mailboxId)) !== undefined;
  const unrecordedHint = registered
    ? `mailbox ${mailboxId} has no certificate on record: give its certificate's serial (openssl x509 -noout -serial -in ${mailboxId}.crt) with --unrecorded`
    : `no mailbox ${mailboxId ?? JSON.stringify(target)} has certificates on record`;
  let serial: string;
  try {
    serial = normalizeSerialNumber(target);
  } catch {
    throw new Error(`${unrecordedHint}, and ${JSON.stringify(target)} is not a hexadecimal serial number`);
  }
  const holder = await stores.certificates.holderOf(serial);
  if (holder !== undefined || unrecorded) return { subject: holder ?? serial, serials: [serial] };
  throw new Error(
    `${unrecordedHint}, and no certificate with serial ${serial} is on record either; nothing was revoked ` +
      '(check it; --unrecorded revokes a serial the records do not show)',
  );
}

export function registerCertCommands(admin: Command, pkiDir: () => string): void {
  const cert = admin.command('cert').description('certificates signed by the CA: issue, sign CSRs, grant, revoke, re-issue the CRL');

  withValidityOption(
    cert
      .command('server')
      .description('issue the server certificate (server.crt, server.key) for the given host names and IPs (neither given: localhost and 127.0.0.1)')
      .option('--dns <name...>', 'DNS names (*.example.org: a wildcard)', dnsNameOption)
      .option('--ip <address...>', 'IP addresses', ipAddressOption)
      .option('--force', 'replace the server certificate and key already there (the server reads them at start)'),
  ).action(async (options: { dns?: string[]; ip?: string[]; force?: boolean; days?: number }) => {
    const dir = pkiDir();
    // A name given alone is the only one: a production certificate must not also carry localhost.
    const named = options.dns !== undefined || options.ip !== undefined;
    const dnsNames = options.dns ?? (named ? [] : ['localhost']);
    const ipAddresses = options.ip ?? (named ? [] : ['127.0.0.1']);
    const { issueServerCertificate } = await loadPki();
    const commonName = dnsNames[0] ?? ipAddresses[0] ?? 'meshbox';
    const issued = issueServerCertificate({ ca: await readCertificateAuthority(dir), commonName, dnsNames, ipAddresses, validityDays: options.days });
    warnIfCutToCaEnd(issued.certPem, options.days);
    const names = [...dnsNames.map((name) => `DNS ${name}`), ...ipAddresses.map((address) => `IP ${address}`)].join(', ');
    const files = await writePemPair(dir, 'server', issued, { replace: options.force === true, advice: '--force replaces it (the server reads it at start)' });
    console.log(`server certificate for ${names} (serial ${issued.serialNumber}): ${files.cert}, key ${files.key}`);
    // A first install makes the server's certificate before there is any Redis.
    await auditIfReachable('cert.server', commonName, `serial ${issued.serialNumber} for ${names}`);
  });

  withValidityOption(
    cert
      .command('issue <mailbox>')
      .description('issue a new client certificate and key for a registered mailbox (<dir>/<ID>.crt and .key)')
      .requiredOption('--cert-out <dir>', 'folder to write the certificate and key to'),
  ).action(async (mailbox: string, options: { certOut: string; days?: number }) => {
    const mailboxId = parseMailboxId(mailbox);
    const ca = await readCertificateAuthority(pkiDir());
    await prepareOutputFolder(options.certOut);
    await refuseExistingFiles(Object.values(pemPairPaths(options.certOut, mailboxId)), renewalAdvice('--cert-out'));
    await withAdminStores(async (stores) => {
      const found = await stores.mailboxes.get(mailboxId);
      if (!found) throw new Error(`no mailbox ${mailboxId}`);
      const { issueMailboxCertificate } = await loadPki();
      const issued = issueMailboxCertificate({ ca, mailboxId, organisation: found.name || undefined, validityDays: options.days });
      warnIfCutToCaEnd(issued.certPem, options.days);
      // Written, then recorded, as cert sign does: a certificate on record whose key was never
      // written would be listed as in use.
      const files = await writePemPair(options.certOut, mailboxId, issued);
      await recordOrRemove(stores.certificates.recordIssued(mailboxId, issued.certPem), [files.cert, files.key], `${files.cert} and its key were removed (nothing was issued)`);
      await stores.audit('cert.issue', mailboxId, `serial ${issued.serialNumber}`);
      console.log(`certificate for ${mailboxId} (serial ${issued.serialNumber}): ${files.cert}, key ${files.key}`);
    });
  });

  withValidityOption(
    cert
      .command('sign <csr-file>')
      .description('sign a certificate request (a mailbox\'s made with `meshbox cert request`; a server\'s or monitoring system\'s with openssl), so the key never leaves its owner')
      .requiredOption('--out <file>', 'where to write the signed certificate: a new file, in a folder that is there (a file or link already there is left as it is)')
      .requiredOption('--for <name>', "whose the request must be: the mailbox id (client), the monitoring system's name, or the server's host name")
      .addOption(
        new Option(
          '--usage <usage>',
          "client (a mailbox), monitoring (no mailbox: only what any of the CA's certificates reaches, health, readiness, metrics, _ping and the lookups) or server",
        )
          .choices(['client', 'monitoring', 'server'])
          .default('client'),
      )
      .option('--dns <name...>', 'server usage: the DNS names to certify, instead of those the request asks for (beyond the --for name, refused without these flags)', dnsNameOption)
      .option('--ip <address...>', 'server usage: the IP addresses to certify, instead of those the request asks for', ipAddressOption)
      .option('--reuse-revoked-key', "sign a key whose certificates on record are all revoked (refused otherwise: a revoked certificate's key may be compromised)"),
  ).action(async (csrFile: string, options: { out: string; for: string; usage: string; dns?: string[]; ip?: string[]; days?: number; reuseRevokedKey?: boolean }) => {
    const server = options.usage === 'server';
    if (!server && (options.dns || options.ip)) throw new Error('--dns and --ip are for --usage server');
    const ca = await readCertificateAuthority(pkiDir());
    const csrPem = await readGivenFile(csrFile, 'the certificate request');
    // --out names a file: a folder that is not there is more likely mistyped than one to make.
    await prepareOutputFolder(dirname(options.out), { create: false });
    await refuseExistingFiles([options.out], renewalAdvice('--out'));
    await withAdminStores(async (stores) => {
      // A monitoring certificate is a client certificate whose name is no mailbox: it passes the
      // handshake, which is all the health routes ask, and no mailbox's password goes with it.
      const { signCertificateRequest } = await loadPki();
      const names = server && (options.dns || options.ip) ? { dnsNames: options.dns ?? [], ipAddresses: options.ip ?? [] } : {};
      const signed = signCertificateRequest({ ca, csrPem, usage: server ? 'server' : 'client', validityDays: options.days, ...names });
      warnIfCutToCaEnd(signed.certPem, options.days);
      const described = describeCertificate(signed.certPem);
      const commonName = described.subjectCommonName ?? '';
      // The request's file name, or whoever handed it over, says nothing: the admin names whose it must be.
      if (commonName.toUpperCase() !== options.for.trim().toUpperCase()) {
        throw new Error(`the request is for ${JSON.stringify(commonName)}, not ${options.for}: nothing was signed`);
      }
      // A client trusts a server certificate for its names, not its CN: names beyond --for are the admin's to give.
      const unnamed = server && !(options.dns || options.ip) ? certifiedNames(described.subjectAltName).filter((name) => !sameHost(name, commonName)) : [];
      if (unnamed.length > 0) {
        throw new Error(`the request also asks for ${unnamed.join(', ')}, which --for does not name: give every name to certify with --dns and --ip (nothing was signed)`);
      }
      const mailbox = await stores.mailboxes.get(commonName);
      if (options.usage === 'client' && !mailbox) {
        throw new Error(`the request is for ${commonName}, which is not a registered mailbox (for a monitoring system: --usage monitoring)`);
      }
      if (options.usage === 'monitoring' && mailbox) throw new Error(`the request is for ${commonName}, a mailbox: a monitoring certificate names none`);
      // A renewal may keep its key, and the old certificate is revoked once the new one is in use: a key
      // with a certificate still in force is fine. One whose every certificate is revoked may be what was compromised.
      const ofKey = await stores.certificates.ofKey(publicKeyFingerprint(signed.certPem));
      // A key is one holder's: one certified for two would outlive the revocation of either's certificates.
      const others = ofKey.holders.filter((holder) => holder !== commonName);
      if (others.length > 0) {
        throw new Error(`the request's key is certified for ${others.join(', ')} already: a key is one holder's, so nothing was signed; have a new key made (\`meshbox cert request\` makes one)`);
      }
      if (ofKey.serials.length > 0 && ofKey.revoked.length === ofKey.serials.length && !options.reuseRevokedKey) {
        throw new Error(
          `the request's key is that of certificates all revoked (serial ${ofKey.revoked.join(', ')}): a revoked certificate's key may be compromised, so nothing was signed; ` +
            'have a new key made (`meshbox cert request` makes one), or give --reuse-revoked-key if it was revoked for another reason',
        );
      }
      await writeFileAtomically(options.out, signed.certPem, { replace: false });
      // On record, so that revoke finds it by its name; once written, as one that no file holds would be listed as in use.
      if (options.usage !== 'server') {
        await recordOrRemove(stores.certificates.recordIssued(commonName, signed.certPem), [options.out], `${options.out} was removed (nothing was signed)`);
      }
      const certified = server ? ` for ${described.subjectAltName ?? commonName}` : '';
      await stores.audit('cert.sign', commonName, `${options.usage} serial ${signed.serialNumber}${certified}`);
      console.log(`signed ${options.usage} certificate for ${commonName}${certified} (serial ${signed.serialNumber}): ${options.out}`);
    });
  });

  for (const [name, granting] of [['grant', true], ['ungrant', false]] as const) {
    cert
      .command(`${name} <certificate-mailbox> <mailbox>`)
      .description(
        granting
          ? "let the certificates of one mailbox (their CN) act for another mailbox too; it still needs that mailbox's password"
          : 'take such a grant back',
      )
      .action(async (holder: string, mailbox: string) => {
        const [commonName, mailboxId] = [parseMailboxId(holder), parseMailboxId(mailbox)];
        await withAdminStores(async (stores) => {
          for (const id of [commonName, mailboxId]) if (!(await stores.mailboxes.get(id))) throw new Error(`no mailbox ${id}`);
          if (granting) await stores.mailboxes.grantCertificate(commonName, mailboxId);
          else if (!(await stores.mailboxes.withdrawGrant(commonName, mailboxId))) throw new Error(`${commonName} has no grant for ${mailboxId}`);
          await stores.audit(`cert.${name}`, mailboxId, `certificates of ${commonName}`);
        });
        console.log(`certificates of ${commonName} ${granting ? 'may now' : 'may no longer'} act for ${mailboxId}`);
      });
  }

  cert
    .command('list')
    .description('list the certificates on record, the soonest to expire first: renew a mailbox certificate before it expires, or its system stops')
    .option(
      '--expiring-within <days>',
      'only those that expire within this many days, have expired (unless a later certificate of the same holder is in force) or have no date on record',
      countOption(0),
    )
    .option('--revoked', 'include revoked certificates')
    .option('--json', 'print JSON: [{"serial", "holder", "notAfter" (ISO, or null when not on record), "daysLeft" (a part day counted as one: 0 or less once expired; null when not on record), "revoked"}]')
    .addHelpText(
      'after',
      [
        '',
        'A line per certificate: its expiry date (UTC), days left (or "expired"), holder (mailbox or monitoring name),',
        'serial, and "revoked" where it is. Certificates recorded before expiry dates were kept show "unknown"',
        '(--expiring-within lists them too: their end may be near).',
        'Renewal: `meshbox cert request` on the mailbox\'s system, `admin cert sign`, and once it is in use, revoke',
        'the old serial (`admin cert revoke <serial>`).',
      ].join('\n'),
    )
    .action(async (options: { expiringWithin?: number; revoked?: boolean; json?: boolean }) => {
      const now = new Date();
      const onRecord = await withAdminStores(({ certificates }) => certificates.onRecord());
      // Holders with a certificate in force: their expired ones were renewed, nothing to do.
      const inForce = new Set(onRecord.filter((c) => !c.revoked && c.notAfter !== undefined && c.notAfter > now).map((c) => c.holder));
      const due = (left: number | null, holder: string, within: number) => left === null || (left <= within && (left > 0 || !inForce.has(holder)));
      const listed = onRecord
        .filter((certificate) => options.revoked === true || !certificate.revoked)
        .map((certificate) => ({ ...certificate, daysLeft: certificate.notAfter === undefined ? null : daysLeft(certificate.notAfter, now) }))
        .filter((certificate) => options.expiringWithin === undefined || due(certificate.daysLeft, certificate.holder, options.expiringWithin));
      if (options.json) {
        const described = listed.map(({ serialNumber, holder, notAfter, daysLeft, revoked }) => ({ serial: serialNumber, holder, notAfter: notAfter?.toISOString() ?? null, daysLeft, revoked }));
        console.log(printableJson(described, 2));
        return;
      }
      for (const { serialNumber, holder, notAfter, daysLeft, revoked } of listed) {
        const left = daysLeft === null ? '-' : daysLeft <= 0 ? 'expired' : dayCount(daysLeft);
        console.log([notAfter?.toISOString().slice(0, 10) ?? 'unknown', left, printableLine(holder), serialNumber, ...(revoked ? ['revoked'] : [])].join('\t'));
      }
    });

  cert
    .command('crl')
    .description(
      're-issue the CRL (crl.pem) from the revocations recorded, revoking nothing: each is good for 30 days, and a server given an expired one refuses every client. ' +
        'A revoked certificate more than 30 days past its end (as recorded) is left out, its revocation kept on record: the handshake refuses it anyway',
    )
    .option('--keep-listed', `record as revoked what ${CRL_FILE} lists and the records lack (records put back from an older backup), rather than refuse`)
    .action(async (options: { keepListed?: boolean }) => {
      const dir = pkiDir();
      await withAdminStores(async (stores) => {
        const adopt = async (listed: readonly RevokedCertificate[]): Promise<void> => {
          for (const { serialNumber, revokedAt } of listed) {
            if (await stores.certificates.revoke(serialNumber, revokedAt)) await stores.audit('cert.revoke', serialNumber, `serial ${serialNumber}, kept from ${CRL_FILE}`);
            console.log(`recorded as revoked (listed in ${CRL_FILE}): serial ${serialNumber}`);
          }
        };
        const file = await publishRevocationList(dir, () => stores.certificates.revocations(), options.keepListed ? adopt : undefined);
        await stores.audit('cert.crl', file);
        console.log(`revocation list written: ${file}`);
      });
    });

  cert
    .command('revoke <mailbox-or-serial>')
    .description('revoke every certificate of a mailbox, or one serial on record: refused on new connections at once and on open ones within 30 s (health and metrics only once the server loads the CRL), and put in the CRL (crl.pem), which leaves out revoked certificates more than 30 days past their end')
    .option('--unrecorded', 'also revoke a serial no mailbox has on record (one issued before certificates were recorded)')
    .action(async (target: string, options: { unrecorded?: boolean }) => {
      const dir = pkiDir();
      await withAdminStores(async (stores) => {
        const { subject, serials } = await revocationTarget(stores, target, options.unrecorded === true);
        await refuseUndoingListed(dir, () => stores.certificates.revocations());
        const now = new Date();
        for (const serial of serials) {
          const revoked = await stores.certificates.revoke(serial, now);
          console.log(`${revoked ? 'revoked' : 'already revoked'}: serial ${serial}`);
          if (revoked) await stores.audit('cert.revoke', subject, `serial ${serial}`);
        }
        const file = await publishRevocationList(dir, () => stores.certificates.revocations()).catch((error: unknown) => {
          throw new Error(
            `revoked all the same (refused on new connections at once, on open ones within 30 s), but the CRL could not be written (${(error as Error).message}): ` +
              'mend that and run `meshbox admin cert crl`, or a server given MESHBOX_TLS_CRL still admits the certificate to the health routes',
            { cause: error },
          );
        });
        console.log(`revocation list written: ${file}`);
      });
    });
}

/** Whether two names are one host: DNS names in any case, IP addresses however written (Node writes IPv6 in full, `2001:DB8:0:0:0:0:0:5`). */
function sameHost(a: string, b: string): boolean {
  const canonical = (name: string): string => (isIPv6(name) ? new URL(`http://[${name}]`).hostname : name.toLowerCase());
  return canonical(a) === canonical(b);
}

/** The names a certificate's subjectAltName (as Node writes it: `DNS:a, IP Address:b`) certifies. */
function certifiedNames(subjectAltName: string | undefined): string[] {
  return (subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry !== '')
    .map((entry) => entry.replace(/^(DNS|IP Address):/, ''));
}
