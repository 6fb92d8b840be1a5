import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { createCertificateAuthority, createCertificateRequest, signCertificateRequest } from '../../shared/src/pki/index.ts';
import { DEFAULT_URL, resolveConnectionSettings, SettingsError } from '../src/client/settings.ts';
import { pkiDirOf } from '../src/commands/admin/index.ts';
import { DEV_CERTS_DIR } from '../../shared/src/dev-paths.ts';

let dir: string;
/** The PEM files' contents by name: a CA, and three certificates of one mailbox key (to tell where each came from). */
const pems: Record<string, string> = {};
const KEY = 'profiles/pem/profile.key';

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshbox-settings-test-'));
  await mkdir(join(dir, 'profiles', 'pem'), { recursive: true });
  const ca = createCertificateAuthority({ commonName: 'settings test CA' });
  const request = createCertificateRequest({ commonName: 'PROFILEBOX' });
  const certified = (): string => signCertificateRequest({ ca, csrPem: request.csrPem, usage: 'client' }).certPem;
  Object.assign(pems, { 'profile.crt': certified(), 'profile.key': request.keyPem, 'profile-ca.crt': ca.certPem, 'env.crt': certified(), 'flag.crt': certified() });
  for (const name of ['profile.crt', 'profile.key', 'profile-ca.crt']) await writeFile(join(dir, 'profiles', 'pem', name), pems[name]!);
  for (const name of ['env.crt', 'flag.crt']) await writeFile(join(dir, name), pems[name]!);
  await writeFile(
    join(dir, 'profiles', 'gp.json'),
    JSON.stringify({
      url: 'https://profile.example:9443',
      mailbox: 'profilebox',
      password: 'profile-password',
      sharedKey: 'profile-key',
      cert: 'pem/profile.crt',
      key: 'pem/profile.key',
      ca: 'pem/profile-ca.crt',
    }),
  );
});

test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('a profile alone supplies everything; its paths resolve against its own folder', async (t) => {
  const settings = await resolveConnectionSettings({ profile: 'profiles/gp.json' }, { env: {}, cwd: dir });
  t.deepEqual(settings, {
    url: 'https://profile.example:9443',
    mailboxId: 'PROFILEBOX',
    password: 'profile-password',
    sharedKey: 'profile-key',
    certPem: pems['profile.crt'],
    keyPem: pems['profile.key'],
    caPem: pems['profile-ca.crt'],
    idleTimeoutMs: 120_000,
    certificateSource: `the client certificate ${join(dir, 'profiles', 'pem', 'profile.crt')} (from profile ${join(dir, 'profiles', 'gp.json')})`,
  });
});

test('flags beat environment variables, which beat the profile (named by MESHBOX_PROFILE)', async (t) => {
  const settings = await resolveConnectionSettings(
    { mailbox: 'flagbox', cert: 'flag.crt' },
    {
      cwd: dir,
      env: {
        MESHBOX_PROFILE: join(dir, 'profiles', 'gp.json'),
        MESHBOX_MAILBOX: 'envbox',
        MESHBOX_PASSWORD: 'env-password',
        MESHBOX_CERT: 'env.crt',
        MESHBOX_URL: 'https://env.example',
      },
    },
  );
  t.is(settings.mailboxId, 'FLAGBOX');
  t.is(settings.certPem, pems['flag.crt']!);
  t.is(settings.password, 'env-password');
  t.is(settings.url, 'https://env.example');
  t.is(settings.sharedKey, 'profile-key');
  t.is(settings.keyPem, pems['profile.key']!);
});

test('the url defaults to https://localhost:8443', async (t) => {
  const settings = await resolveConnectionSettings(
    { mailbox: 'a', password: 'p', sharedKey: 'k', cert: 'flag.crt', key: KEY, ca: 'env.crt' },
    { env: {}, cwd: dir },
  );
  t.is(settings.url, DEFAULT_URL);
});

test("the shared key is taken without the spaces or line end around it, as the server takes its own; one of spaces alone is missing", async (t) => {
  const complete = { mailbox: 'a', password: 'p', cert: 'flag.crt', key: KEY, ca: 'env.crt' };
  t.is((await resolveConnectionSettings(complete, { env: { MESHBOX_SHARED_KEY: ' the-key\n' }, cwd: dir })).sharedKey, 'the-key');
  const blank = await t.throwsAsync(resolveConnectionSettings({ ...complete, sharedKey: '  ' }, { env: {}, cwd: dir }), { instanceOf: SettingsError });
  t.regex(blank?.message ?? '', /shared key \(the environment's HMAC secret\) is missing/);
});

test('every missing setting is named with its flag, variable and profile key', async (t) => {
  const error = await t.throwsAsync(resolveConnectionSettings({ password: 'p' }, { env: {}, cwd: dir }), { instanceOf: SettingsError });
  const lines = (error?.message ?? '').split('\n').slice(1);
  t.is(lines.length, 5);
  t.true(lines.some((line) => line.includes('mailbox id is missing') && line.includes('--mailbox <id>') && line.includes('MESHBOX_MAILBOX') && line.includes('"mailbox"')));
  t.false(error?.message.includes('password'));
});

test('bad values and unreadable files are reported clearly', async (t) => {
  const bad = await t.throwsAsync(
    resolveConnectionSettings(
      { url: 'http://plain.example', mailbox: 'a/b', password: 'p', sharedKey: 'k', cert: 'flag.crt', key: KEY, ca: 'env.crt' },
      { env: {}, cwd: dir },
    ),
    { instanceOf: SettingsError },
  );
  t.regex(bad?.message ?? '', /server URL "http:\/\/plain\.example" must look like https:\/\/host\[:port\]/);
  t.regex(bad?.message ?? '', /mailbox id "a\/b" must be letters and digits only/);

  const unreadable = await t.throwsAsync(
    resolveConnectionSettings({ mailbox: 'a', password: 'p', sharedKey: 'k', cert: 'missing.crt', key: KEY, ca: 'env.crt' }, { env: {}, cwd: dir }),
    { instanceOf: SettingsError },
  );
  t.regex(unreadable?.message ?? '', /cannot read client certificate \(PEM file\) .*missing\.crt \(from --cert\)/);
});

test('a file that is not what its setting wants, or a certificate and key that are not a pair, is named with where it came from', async (t) => {
  const complete = { mailbox: 'a', password: 'p', sharedKey: 'k', cert: 'flag.crt', key: KEY, ca: 'env.crt' };
  await writeFile(join(dir, 'not-pem.crt'), 'not a certificate');
  const notPem = await t.throwsAsync(resolveConnectionSettings({ ...complete, cert: 'not-pem.crt' }, { env: {}, cwd: dir }), { instanceOf: SettingsError });
  t.regex(notPem?.message ?? '', /^client certificate \(PEM file\) .*not-pem\.crt \(from --cert\) is not usable: /);
  const certAsKey = await t.throwsAsync(resolveConnectionSettings({ ...complete, key: 'flag.crt' }, { env: {}, cwd: dir }), { instanceOf: SettingsError });
  t.regex(certAsKey?.message ?? '', /^client private key \(PEM file\) .*flag\.crt \(from --key\) is not usable: /);
  for (const ca of ['not-pem.crt', KEY]) {
    const notCa = await t.throwsAsync(resolveConnectionSettings({ ...complete, ca }, { env: {}, cwd: dir }), { instanceOf: SettingsError });
    t.regex(notCa?.message ?? '', /^server's CA certificate \(PEM file\) .* \(from --ca\) is not usable: /);
  }
  const otherKey = createCertificateRequest({ commonName: 'OTHER' }).keyPem;
  await writeFile(join(dir, 'other.key'), otherKey);
  const mismatch = await t.throwsAsync(resolveConnectionSettings({ ...complete, key: 'other.key' }, { env: {}, cwd: dir }), { instanceOf: SettingsError });
  t.regex(mismatch?.message ?? '', /^client certificate \(PEM file\) .*flag\.crt \(from --cert\) and client private key \(PEM file\) .*other\.key \(from --key\) are not a pair: /);
});

test('the request timeout comes from --timeout, MESHBOX_TIMEOUT or the profile, in whole seconds', async (t) => {
  const complete = { mailbox: 'a', password: 'p', sharedKey: 'k', cert: 'flag.crt', key: KEY, ca: 'env.crt' };
  await writeFile(join(dir, 'slow-link.json'), JSON.stringify({ timeout: '600' }));
  await writeFile(join(dir, 'slow-link-number.json'), JSON.stringify({ timeout: 900 }));
  const timeoutFrom = async (flags: Record<string, string>, env: Record<string, string>) =>
    (await resolveConnectionSettings({ ...complete, ...flags }, { env, cwd: dir })).idleTimeoutMs;
  t.is(await timeoutFrom({ profile: 'slow-link.json' }, {}), 600_000);
  t.is(await timeoutFrom({ profile: 'slow-link-number.json' }, {}), 900_000, 'a JSON number as well');
  t.is(await timeoutFrom({ profile: 'slow-link.json' }, { MESHBOX_TIMEOUT: '300' }), 300_000);
  t.is(await timeoutFrom({ profile: 'slow-link.json', timeout: '5' }, { MESHBOX_TIMEOUT: '300' }), 5_000);
  for (const bad of ['0', '-5', '1.5', '2m', '86401']) {
    await t.throwsAsync(resolveConnectionSettings({ ...complete, timeout: bad }, { env: {}, cwd: dir }), {
      instanceOf: SettingsError,
      message: `timeout "${bad}" must be a whole number of seconds from 1 to 86400`,
    });
  }
});

test('a profile with an unknown key or broken JSON is refused with its path', async (t) => {
  await writeFile(join(dir, 'typo.json'), JSON.stringify({ mailbox: 'a', shared_key: 'k' }));
  const typo = await t.throwsAsync(resolveConnectionSettings({ profile: 'typo.json' }, { env: {}, cwd: dir }), { instanceOf: SettingsError });
  t.regex(typo?.message ?? '', /typo\.json: unknown key\(s\) "shared_key"/);
  await writeFile(join(dir, 'broken.json'), '{ "mailbox": ');
  const broken = await t.throwsAsync(resolveConnectionSettings({ profile: 'broken.json' }, { env: {}, cwd: dir }), { instanceOf: SettingsError });
  t.regex(broken?.message ?? '', /broken\.json is not valid JSON/);
});

test("admin's PKI folder: --pki-dir, else MESHBOX_PKI_DIR, else the checkout's certs/; an empty value is an unset one, not the current folder", (t) => {
  t.is(pkiDirOf('/srv/pki', { MESHBOX_PKI_DIR: '/etc/meshbox/pki' }), '/srv/pki');
  t.is(pkiDirOf(undefined, { MESHBOX_PKI_DIR: '/etc/meshbox/pki' }), '/etc/meshbox/pki');
  t.is(pkiDirOf(undefined, { MESHBOX_PKI_DIR: '' }), DEV_CERTS_DIR);
  t.is(pkiDirOf('', {}), DEV_CERTS_DIR);
  t.is(pkiDirOf('', { MESHBOX_PKI_DIR: '/etc/meshbox/pki' }), '/etc/meshbox/pki');
  t.is(pkiDirOf('  ', { MESHBOX_PKI_DIR: ' \t' }), DEV_CERTS_DIR, 'blank as empty, as the server reads it');
});
