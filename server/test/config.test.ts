import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { ConfigError, loadBackendConfig, loadConfig } from '../src/config.ts';

const dir = mkdtempSync(join(tmpdir(), 'meshbox-config-'));
for (const name of ['server.crt', 'server.key', 'ca.crt']) writeFileSync(join(dir, name), `${name} pem`);
const files = {
  MESHBOX_TLS_CERT: join(dir, 'server.crt'),
  MESHBOX_TLS_KEY: join(dir, 'server.key'),
  MESHBOX_TLS_CA: join(dir, 'ca.crt'),
  MESHBOX_SHARED_KEY: 'shared',
  MESHBOX_SECRET_KEY: 'secret',
};

test('defaults give a loopback server on 8443 with embedded Redis and S3', (t) => {
  const config = loadConfig(files);
  t.is(config.host, '127.0.0.1');
  t.is(config.port, 8443);
  t.is(config.redisUrl, undefined);
  t.is(config.s3.endpoint, undefined);
  t.is(config.s3.bucket, 'meshbox');
  t.is(config.tls.cert, 'server.crt pem');
  t.is(config.sharedKey, 'shared');
  t.is(config.secretKey, 'secret');
  t.is(config.mailboxCacheMs, 1000);
  t.is(loadConfig({ ...files, MESHBOX_MAILBOX_CACHE_SECONDS: '0' }).mailboxCacheMs, 0);
  t.is(loadConfig({ ...files, MESHBOX_MAILBOX_CACHE_SECONDS: '1.005' }).mailboxCacheMs, 1005);
  t.is(config.periods.auditRetentionMs, 30 * 86_400_000);
  t.is(loadConfig({ ...files, MESHBOX_AUDIT_RETENTION_SECONDS: '0' }).periods.auditRetentionMs, 0);
});

test('explicit Redis and S3 settings are used', (t) => {
  const config = loadConfig({
    ...files,
    MESHBOX_PORT: '9443',
    MESHBOX_REDIS_URL: 'redis://10.0.0.7:6379',
    MESHBOX_S3_ENDPOINT: 'https://s3.example.org',
    MESHBOX_S3_BUCKET: 'mesh-payloads',
    MESHBOX_S3_ACCESS_KEY_ID: 'id',
    MESHBOX_S3_SECRET_ACCESS_KEY: 'secret',
  });
  t.is(config.port, 9443);
  t.is(config.redisUrl, 'redis://10.0.0.7:6379');
  t.deepEqual(config.s3.credentials, { accessKeyId: 'id', secretAccessKey: 'secret' });
});

test('every bad value is named in one clear error', (t) => {
  const error = t.throws(
    () =>
      loadConfig({
        ...files,
        MESHBOX_PORT: '70000',
        MESHBOX_REDIS_URL: 'not a url',
        MESHBOX_S3_BUCKET: 'Bad_Bucket',
        MESHBOX_LOG_LEVEL: 'loud',
        MESHBOX_MAILBOX_CACHE_SECONDS: '-1',
      }),
    { instanceOf: ConfigError },
  );
  for (const variable of ['MESHBOX_PORT', 'MESHBOX_REDIS_URL', 'MESHBOX_S3_BUCKET', 'MESHBOX_LOG_LEVEL', 'MESHBOX_MAILBOX_CACHE_SECONDS']) {
    t.true(error?.message.includes(variable), variable);
  }
});

test('an unreadable TLS file or shared key file says which variable and how to fix it', (t) => {
  const noCert = t.throws(() => loadConfig({ ...files, MESHBOX_TLS_CERT: join(dir, 'missing.crt') }), { instanceOf: ConfigError });
  t.regex(noCert?.message ?? '', /MESHBOX_TLS_CERT: cannot read .*missing\.crt.*npm run setup/);
  const noKey = t.throws(
    () => loadConfig({ ...files, MESHBOX_SHARED_KEY: undefined, MESHBOX_SHARED_KEY_FILE: join(dir, 'nope') }),
    { instanceOf: ConfigError },
  );
  t.regex(noKey?.message ?? '', /MESHBOX_SHARED_KEY_FILE/);
});

test('the server secret comes from MESHBOX_SECRET_KEY or its file, with a clear error when neither is there', (t) => {
  writeFileSync(join(dir, 'secret-key'), 'from-file\n');
  t.is(loadConfig({ ...files, MESHBOX_SECRET_KEY: undefined, MESHBOX_SECRET_KEY_FILE: join(dir, 'secret-key') }).secretKey, 'from-file');
  const missing = t.throws(() => loadConfig({ ...files, MESHBOX_SECRET_KEY: undefined, MESHBOX_SECRET_KEY_FILE: join(dir, 'none') }), {
    instanceOf: ConfigError,
  });
  t.regex(missing?.message ?? '', /MESHBOX_SECRET_KEY_FILE: cannot read/);
});

test('S3 access key id and secret go together', (t) => {
  t.throws(() => loadBackendConfig({ MESHBOX_S3_ACCESS_KEY_ID: 'only-id' }), { message: /go together/ });
});

const backend = (environment: NodeJS.ProcessEnv) => loadBackendConfig({ MESHBOX_SECRET_KEY: 'secret', ...environment });

test('a Redis Cluster is named by its seed nodes; several URLs without cluster mode, or cluster mode without URLs, are refused', (t) => {
  const seeds = 'redis://10.0.0.7:7000, redis://10.0.0.8:7000';
  const cluster = backend({ MESHBOX_REDIS_URL: seeds, MESHBOX_REDIS_CLUSTER: 'true' });
  t.true(cluster.redisCluster);
  t.is(cluster.redisUrl, seeds);
  t.false(backend({ MESHBOX_REDIS_URL: 'redis://10.0.0.7:6379' }).redisCluster);
  t.throws(() => backend({ MESHBOX_REDIS_URL: seeds }), { message: /MESHBOX_REDIS_CLUSTER=true/ });
  t.throws(() => backend({ MESHBOX_REDIS_CLUSTER: 'true' }), { message: /needs MESHBOX_REDIS_URL/ });
  t.throws(() => backend({ MESHBOX_REDIS_URL: 'redis://10.0.0.7:7000,http//x', MESHBOX_REDIS_CLUSTER: 'true' }), {
    message: /MESHBOX_REDIS_URL/,
  });
  t.throws(() => backend({ MESHBOX_REDIS_CLUSTER: 'yes' }), { message: /MESHBOX_REDIS_CLUSTER/ });
});

test('a Redis prefix may not carry a hash tag: it would put every key in one cluster slot', (t) => {
  t.throws(() => backend({ MESHBOX_REDIS_PREFIX: '{meshbox}:' }), { message: /MESHBOX_REDIS_PREFIX/ });
  t.is(backend({ MESHBOX_REDIS_PREFIX: 'nhs.mesh:' }).redisPrefix, 'nhs.mesh:');
});
