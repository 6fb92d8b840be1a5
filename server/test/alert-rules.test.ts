import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { Metrics } from '../src/metrics.ts';
import { REPO_ROOT } from '../../shared/src/dev-paths.ts';

/** Every metric a process may export: a worker's (the queue gauge), with a CRL loaded and replica confirmation on. */
async function everyExportedName(): Promise<Set<string>> {
  const metrics = new Metrics({ name: 'message-lifecycle', counts: async () => ({ scheduled: 0, due: 0, failing: 0, held: 0 }) });
  metrics.serverCertificate(new Date());
  metrics.replicaConfirmation(() => false);
  metrics.revocationListLoaded(new Date());
  const text = await metrics.registry.metrics();
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map(([, name]) => name!));
}

test('every meshbox metric the example alerting rules name is one the server exports (a rule on a renamed metric would never fire)', async (t) => {
  const rules = await readFile(join(REPO_ROOT, 'docs/prometheus-alerts.yml'), 'utf8');
  const named = new Set([...rules.matchAll(/\bmeshbox_[a-z_]+/g)].map(([name]) => name));
  t.true(named.size >= 9, [...named].join(', '));
  const exported = await everyExportedName();
  t.deepEqual([...named].filter((name) => !exported.has(name)), []);
});
