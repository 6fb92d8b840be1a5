// Preloaded into a CLI subprocess (node --import): SIGKILLs the process itself just before the
// file-system call named by MESHBOX_TEST_KILL_AT, {"op": "rename"|"rm"|..., "match": "<regex on the args>"}.
// A crash (kill -9, power cut) at exactly that step, nothing more.
import { createRequire, syncBuiltinESMExports } from 'node:module';

const spec = process.env.MESHBOX_TEST_KILL_AT ? JSON.parse(process.env.MESHBOX_TEST_KILL_AT) : undefined;
if (spec) {
  const require = createRequire(import.meta.url);
  const promises = require('node:fs/promises');
  const original = promises[spec.op];
  const pattern = new RegExp(spec.match);
  promises[spec.op] = function (...args) {
    if (pattern.test(args.map(String).join(' -> '))) {
      process.stderr.write(`kill-at: SIGKILL before ${spec.op}(${args.map(String).join(', ')})\n`);
      process.kill(process.pid, 'SIGKILL');
    }
    return original.apply(this, args);
  };
  syncBuiltinESMExports();
}
