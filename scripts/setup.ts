/**
 * `npm run setup`: everything a fresh checkout needs to run meshbox locally, idempotent.
 * Starts the local Redis and S3 server, creates the development PKI (CA, server certificate
 * for localhost/127.0.0.1), the environment's shared key, and two demo mailboxes — a
 * pathology laboratory and a GP practice — with certificates, passwords and CLI profiles.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readCertificateAuthority } from '../client-cli/src/commands/admin/pki-files.ts';
import { loadBackendConfig, loadPort, SecretKeyMismatchError } from '../server/src/config.ts';
import { resolveBackends } from '../server/src/backends.ts';
import { redisKeys } from '../server/src/store/keys.ts';
import { CertificateStore } from '../server/src/store/certificates.ts';
import { MailboxStore } from '../server/src/store/mailboxes.ts';
import { PasswordCipher } from '../server/src/store/password-cipher.ts';
import { DEV_CERTS_DIR } from '../shared/src/dev-paths.ts';
import { DEMO_MAILBOXES, demoProfilePath } from './demo-mailboxes.ts';
import { issueMailboxCertificate } from '../shared/src/pki/index.ts';
import { ensureDevelopmentPki, ensureIssuedBy } from './dev-pki.ts';
import { openRedis } from '../server/src/store/redis-client.ts';

const step = (text: string): void => console.log(`setup: ${text}`);

interface Profile {
  readonly url: string;
  readonly mailbox: string;
  readonly password: string;
  readonly sharedKey: string;
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

async function readProfile(path: string): Promise<Profile | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Profile;
  } catch {
    return undefined;
  }
}

/** Registers the demo mailboxes (again, after a reset of local data) and writes their CLI profiles. */
async function ensureDemoMailboxes(port: number): Promise<void> {
  const config = await resolveBackends(loadBackendConfig());
  const redis = openRedis(config, { maxRetriesPerRequest: 2 });
  try {
    const keys = redisKeys(config.redisPrefix);
    const mailboxes = new MailboxStore(redis, keys, new PasswordCipher(config.secretKey));
    const certificates = new CertificateStore(redis, keys);
    if (!(await mailboxes.secretKeyMatches())) {
      throw new SecretKeyMismatchError(
        process.env,
        config.redisPrefix,
        'restore the key they were made with, or delete the local data with `npm run services -- reset`',
      );
    }
    const ca = await readCertificateAuthority(DEV_CERTS_DIR);
    const sharedKey = (await readFile(join(DEV_CERTS_DIR, 'shared-key'), 'utf8')).trim();
    const mailboxDir = join(DEV_CERTS_DIR, 'mailboxes');
    await mkdir(mailboxDir, { recursive: true });
    for (const demo of DEMO_MAILBOXES) {
      const profilePath = demoProfilePath(demo.id);
      const password = (await readProfile(profilePath))?.password ?? randomBytes(12).toString('hex');
      if (await mailboxes.create({ ...demo, password })) {
        step(`registered mailbox ${demo.id} (${demo.name})`);
      } else {
        await mailboxes.setPassword(demo.id, password);
      }
      await ensureIssuedBy(ca, mailboxDir, demo.id, step, () => issueMailboxCertificate({ ca, mailboxId: demo.id, organisation: demo.name }));
      // Also for a certificate an earlier setup left unrecorded: `admin cert revoke <ID>` finds what is recorded.
      await certificates.recordIssued(demo.id, await readFile(join(mailboxDir, `${demo.id}.crt`), 'utf8'));
      const profile: Profile = {
        // Where `npm start` listens: MESHBOX_PORT, as the server reads it.
        url: `https://localhost:${port}`,
        mailbox: demo.id,
        password,
        sharedKey,
        cert: `${demo.id}.crt`,
        key: `${demo.id}.key`,
        ca: '../ca.crt',
      };
      await writeFile(profilePath, `${JSON.stringify(profile, null, 2)}\n`, { mode: 0o600 });
      step(`profile for ${demo.id}: ${profilePath}`);
    }
  } finally {
    redis.disconnect();
  }
}

// Demo mailboxes (receiving PATH_TEST_RESULTS, so found by lookups) belong in development state only.
if (process.env.MESHBOX_REDIS_URL?.trim()) {
  console.error(
    'setup: MESHBOX_REDIS_URL is set: setup prepares the local development services and would register its demo mailboxes there. Unset it (and MESHBOX_S3_ENDPOINT) to set up for development.',
  );
  process.exit(1);
}
// Checked before anything is made: a profile naming a port no server takes would fail every CLI command.
let port: number;
try {
  port = loadPort();
} catch (error) {
  console.error(`setup: ${(error as Error).message}`);
  process.exit(1);
}
await ensureDevelopmentPki(DEV_CERTS_DIR, step);
await ensureDemoMailboxes(port);
step('done. Next: `npm run demo` (starts a server for the demo unless `npm start` is running one), or `npm start`.');
