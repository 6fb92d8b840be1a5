import test from 'ava';
import { MINIMUM_REDIS_MAJOR, redisMajorVersion } from '../src/connections.ts';

test("a Redis's major version is read from its INFO server answer, to refuse one older than meshbox's scripts need", (t) => {
  const info = (version: string): string => `# Server\r\nredis_version:${version}\r\nredis_git_sha1:00000000\r\nredis_mode:standalone\r\n`;
  t.is(redisMajorVersion(info('7.0.15')), 7);
  t.is(redisMajorVersion(info('6.2.14')), 6);
  t.is(redisMajorVersion(info('10.1.0')), 10);
  t.true(redisMajorVersion(info('6.2.14'))! < MINIMUM_REDIS_MAJOR);
  t.is(redisMajorVersion('# Server\r\nredis_mode:standalone\r\n'), undefined, 'an answer without it (a proxy, a fork) is not refused');
  t.is(redisMajorVersion('# Server\r\nos:Linux redis_version:5.0.0\r\n'), undefined, 'only a line of its own');
});
