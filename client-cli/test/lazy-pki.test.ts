import { createRequire } from 'node:module';
import test from 'ava';

test('the CLI loads node-forge only for a command that makes certificates, so `meshbox serve` (the server) does not carry it', async (t) => {
  // Loaded as the CLI's entry does, without running a command: ava runs each test file in its own process.
  await import('../src/program.ts');
  const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes('/node_modules/node-forge/'));
  t.false(loaded());
  const { loadPki } = await import('../src/commands/pki.ts');
  await loadPki();
  t.true(loaded(), 'the check sees node-forge once it is loaded');
});
