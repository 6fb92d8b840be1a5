// Preloaded into a CLI subprocess (NODE_OPTIONS=--import=...): appends the URL of every module
// the process loads to the file MESHBOX_TEST_LOAD_LOG names, one a line.
import { appendFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const log = process.env.MESHBOX_TEST_LOAD_LOG;
if (log) {
  registerHooks({
    load(url, context, nextLoad) {
      appendFileSync(log, `${url}\n`);
      return nextLoad(url, context);
    },
  });
}
