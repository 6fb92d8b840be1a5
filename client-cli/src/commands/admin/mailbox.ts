import type { Command } from 'commander';
import { loadPki } from '../pki.ts';
import { printableJson, printableLine } from '../../client/untrusted-text.ts';
import { parseMailboxId, parseNewMailboxId, parseWorkflowId } from '../../../../shared/src/protocol/index.ts';
import { ANY_WORKFLOW, type Mailbox, type MailboxProfile } from '../../../../server/src/store/mailboxes.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkInboxNow } from '../../../../server/src/domain/lifecycle.ts';
import { withAdminStores } from './admin-context.ts';
import { mailboxNameOption, odsCodeOption } from './mailbox-options.ts';
import { addPasswordOptions, type ChosenPassword, choosePassword, type PasswordOptions } from './password-input.ts';
import { refuseExistingFiles } from '../../transfer/durable-files.ts';
import { pemPairPaths, prepareOutputFolder, readCertificateAuthority, recordOrRemove, renewalAdvice, warnIfCutToCaEnd, withValidityOption, writePemPair } from './pki-files.ts';

function passwordNote(chosen: ChosenPassword): string {
  return chosen.generated ? `; password ${chosen.password}` : '';
}

/** A mailbox registered whose certificate did not follow: says how to mend it, and gives a generated password (nobody has it otherwise). */
function registeredButError(mailboxId: string, what: string, chosen: ChosenPassword, cause: unknown): Error {
  return new Error(`mailbox ${mailboxId} is registered, but ${what}: issue one with \`meshbox admin cert issue ${mailboxId} --cert-out <dir>\`${passwordNote(chosen)}`, {
    cause,
  });
}

/** What a profile update changed, for its output and audit entry: `ODS code X26 -> Y26; name "Old" -> "New"`. */
function profileChanges(before: MailboxProfile, after: MailboxProfile): string {
  const changed = [
    ...(before.odsCode === after.odsCode ? [] : [`ODS code ${before.odsCode || '(none)'} -> ${after.odsCode}`]),
    ...(before.name === after.name ? [] : [`name ${JSON.stringify(before.name)} -> ${JSON.stringify(after.name)}`]),
  ];
  return changed.join('; ');
}

function describe(mailbox: Mailbox): Record<string, unknown> {
  // The password never leaves the store through the CLI.
  return {
    id: mailbox.id,
    name: mailbox.name,
    odsCode: mailbox.odsCode,
    active: mailbox.active,
    sendWorkflows: mailbox.sendWorkflows,
    receiveWorkflows: mailbox.receiveWorkflows,
    createdAt: mailbox.createdAt.toISOString(),
    lastHandshake: mailbox.lastHandshake ? { at: mailbox.lastHandshake.at.toISOString(), client: mailbox.lastHandshake.client } : null,
  };
}

export function registerMailboxCommands(admin: Command, pkiDir: () => string): void {
  const mailbox = admin.command('mailbox').description('register and manage mailboxes');

  withValidityOption(
    addPasswordOptions(
      mailbox.command('create <id>').description('register a mailbox and issue its client certificate (<dir>/<ID>.crt and .key)'),
      'the mailbox password (used in the NHSMESH token)',
    )
      .option('--ods <code>', 'ODS code of the organisation (letters and digits)', odsCodeOption, '')
      .option('--name <text>', 'display name, returned by lookups (at most 200 characters, on one line)', mailboxNameOption, '')
      .option('--workflow <id...>', "workflows it may send and receive (default '*': any; refine with admin workflow)")
      .requiredOption('--cert-out <dir>', 'folder to write the certificate and key to'),
  ).action(async (id: string, options: PasswordOptions & { ods: string; name: string; workflow?: string[]; certOut: string; days?: number }) => {
    const mailboxIdValue = parseNewMailboxId(id);
    const workflows = options.workflow?.map(parseWorkflowId);
    const authority = await readCertificateAuthority(pkiDir());
    const chosen = await choosePassword(options);
    await prepareOutputFolder(options.certOut);
    const { issueMailboxCertificate } = await loadPki();
    const files = await withAdminStores(async ({ mailboxes, certificates, audit }) => {
      const existing = await mailboxes.get(mailboxIdValue);
      if (existing) throw new Error(`mailbox ${mailboxIdValue} already exists`);
      // A monitoring system's certificates name no mailbox: a mailbox of that name would make them its own.
      if ((await certificates.issuedTo(mailboxIdValue)).length > 0) {
        throw new Error(`certificates named ${mailboxIdValue} are on record though no such mailbox is (a monitoring certificate?): choose another id`);
      }
      // Both before the mailbox is registered, which would be left without its certificate: the
      // files' places, and the issuing (a CA key not matching its certificate, or encrypted, fails).
      await refuseExistingFiles(Object.values(pemPairPaths(options.certOut, mailboxIdValue)), renewalAdvice('--cert-out'));
      const certificate = issueMailboxCertificate({ ca: authority, mailboxId: mailboxIdValue, organisation: options.name || undefined, validityDays: options.days });
      const created = await mailboxes.create({
        id: mailboxIdValue,
        password: chosen.password,
        name: options.name,
        odsCode: options.ods,
        ...(workflows ? { workflows } : {}),
      });
      if (!created) throw new Error(`mailbox ${mailboxIdValue} already exists`);
      warnIfCutToCaEnd(certificate.certPem, options.days);
      // Written, then recorded, as cert issue does.
      const written = await writePemPair(options.certOut, mailboxIdValue, certificate).catch((error: unknown) => {
        throw registeredButError(mailboxIdValue, `its certificate could not be written (${(error as Error).message})`, chosen, error);
      });
      await Promise.all([
        recordOrRemove(certificates.recordIssued(mailboxIdValue, certificate.certPem), [written.cert, written.key], `${written.cert} and its key were removed`).catch((error: unknown) => {
          throw registeredButError(mailboxIdValue, (error as Error).message, chosen, error);
        }),
        // What decides its routing and permissions, as a profile update records its changes.
        audit(
          'mailbox.create',
          mailboxIdValue,
          `ODS code ${options.ods || '(none)'}; name ${JSON.stringify(options.name)}; workflows ${[...new Set(workflows ?? [ANY_WORKFLOW])].join(' ')}; certificate serial ${certificate.serialNumber}`,
        ),
      ]);
      return written;
    });
    console.log(`mailbox ${mailboxIdValue} created; certificate ${files.cert}, key ${files.key}${passwordNote(chosen)}`);
  });

  addPasswordOptions(
    mailbox
      .command('password <id>')
      .description('give a mailbox a new password: it works at once; the old one stops within MESHBOX_MAILBOX_CACHE_SECONDS'),
    'the new password',
  ).action(async (id: string, options: PasswordOptions) => {
  const mailboxId = parseMailboxId(id);
  const chosen = await choosePassword(options);
  await withAdminStores(async ({ mailboxes, audit }) => {
    if (!(await mailboxes.setPassword(mailboxId, chosen.password))) throw new Error(`no mailbox ${mailboxId}`);
    await audit('mailbox.password', mailboxId);
  });
    console.log(`mailbox ${mailboxId} has a new password${passwordNote(chosen)}`);
  });

  mailbox
    .command('update <id>')
    .description("correct a mailbox's display name or ODS code (lookups answer the new ones at once)")
    .option('--ods <code>', 'the new ODS code (letters and digits): the mailbox moves to its endpoint lookup', odsCodeOption)
    .option('--name <text>', 'the new display name (at most 200 characters, on one line)', mailboxNameOption)
    .addHelpText(
      'after',
      [
        '',
        'Certificates already issued keep the name they were issued with as their organisation (O): a client',
        'certificate is matched by its common name, the mailbox id, so they work on; `admin cert issue` gives',
        'one with the new name. Running servers show the new values in tracking within MESHBOX_MAILBOX_CACHE_SECONDS.',
      ].join('\n'),
    )
    .action(async (id: string, options: { ods?: string; name?: string }, command: Command) => {
      if (options.name === undefined && options.ods === undefined) command.error('error: give --name, --ods or both');
      const mailboxId = parseMailboxId(id);
      const update = await withAdminStores(async ({ mailboxes, audit }) => {
        const updated = await mailboxes.updateProfile(mailboxId, { name: options.name, odsCode: options.ods });
        if (updated.outcome === 'not_found') throw new Error(`no mailbox ${mailboxId}`);
        if (updated.outcome === 'updated') await audit('mailbox.update', mailboxId, profileChanges(updated.before, updated.after));
        return updated;
      });
      console.log(printableLine(update.outcome === 'updated' ? `mailbox ${mailboxId} updated: ${profileChanges(update.before, update.after)}` : `mailbox ${mailboxId} has those values already: nothing changed`));
    });

  mailbox
    .command('list')
    .description('list registered mailboxes')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const mailboxes = await withAdminStores(({ mailboxes: store }) => store.list());
      if (options.json) {
        // What a client said at its handshake is its own text: C1 controls and invisible characters (which JSON leaves as they are) escaped.
        console.log(printableJson(mailboxes.map(describe), 2));
        return;
      }
      for (const entry of mailboxes) {
        console.log(`${entry.id}\t${entry.active ? 'active' : 'disabled'}\t${printableLine(entry.odsCode)}\t${printableLine(entry.name)}`);
      }
    });

  mailbox
    .command('show <id>')
    .description(
      'show one mailbox, with its certificates on record: serial, expiry (null when not recorded), revoked (to renew one in time, and revoke the old one after); and the other mailboxes its certificates may act for (admin cert grant)',
    )
    .action(async (id: string) => {
      const mailboxId = parseMailboxId(id);
      const shown = await withAdminStores(async ({ mailboxes: store, certificates }) => {
        const found = await store.get(mailboxId);
        if (!found) return undefined;
        const serials = await certificates.issuedTo(mailboxId);
        const [revoked, expiry, grants] = await Promise.all([
          Promise.all(serials.map((serial) => certificates.isRevoked(serial))),
          certificates.expiryOf(serials),
          store.grantedMailboxes(mailboxId),
        ]);
        return {
          ...describe(found),
          certificates: serials.map((serial, i) => ({ serial, notAfter: expiry[i]?.toISOString() ?? null, revoked: revoked[i] })),
          certificatesActFor: [...grants].sort(),
        };
      });
      if (!shown) throw new Error(`no mailbox ${mailboxId}`);
      console.log(printableJson(shown, 2));
    });

  mailbox
    .command('enable <id>')
    .description('allow the mailbox to connect and receive again (what its disabling returned to senders stays returned)')
    .action(async (id: string) => {
      const mailboxId = parseMailboxId(id);
      await withAdminStores(async ({ mailboxes, audit }) => {
        if (!(await mailboxes.setActive(mailboxId, true))) throw new Error(`no mailbox ${mailboxId}`);
        await audit('mailbox.enable', mailboxId);
      });
      console.log(`mailbox ${mailboxId} enabled`);
    });
  mailbox
    .command('disable <id>')
    .description(
      "deactivate the mailbox (MESH's deactivation): it can neither connect nor receive, and the messages waiting in its inbox go back to their senders as undeliverable, each with a non-delivery report",
    )
    .action(async (id: string) => {
      const mailboxId = parseMailboxId(id);
      const waiting = await withAdminStores(async ({ mailboxes, messages, schedule, audit, mailboxCacheMs }) => {
        if (!(await mailboxes.setActive(mailboxId, false))) throw new Error(`no mailbox ${mailboxId}`);
        await audit('mailbox.disable', mailboxId);
        const scan = () => checkInboxNow({ messages, schedule }, mailboxId, new Date());
        const first = await scan();
        // A send that read the mailbox as active just before (servers keep it for their mailbox
        // cache time, each its own) may deliver after the scan: a second scan finds it, and a
        // delivery after that sees the mailbox disabled and brings its own check forward.
        await sleep((await mailboxCacheMs()) + 1000);
        return new Set([...first, ...(await scan())]).size;
      });
      const returned =
        waiting === 0
          ? 'no messages were waiting'
          : `${waiting === 1 ? '1 waiting message goes back to its sender' : `${waiting} waiting messages go back to their senders`} as undeliverable at the lifecycle worker's next sweep`;
      console.log(`mailbox ${mailboxId} disabled: ${returned}`);
    });
}
