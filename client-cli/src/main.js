#!/usr/bin/env node
// @ts-check
// The `meshbox` command. The one JavaScript file: it turns on Node's compile cache before the
// first TypeScript module loads. A module the cache serves needs no type stripping, so a command
// that finds everything cached never loads the stripper, and starts on about 40% less CPU.
import { statSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';

/**
 * The user's own cache folder (XDG: `$XDG_CACHE_HOME`, else `~/.cache`), not Node's default in
 * the shared temporary folder, where another user could leave compiled code for this one to run.
 * Undefined for a user without a home folder (a container's arbitrary uid): no cache, as before.
 */
function userCacheFolder() {
  const xdg = process.env.XDG_CACHE_HOME;
  if (xdg && isAbsolute(xdg)) return xdg;
  try {
    return join(homedir(), '.cache');
  } catch {
    return undefined;
  }
}

/**
 * Whether only this user can write `folder` (or, not made yet, the nearest folder above that
 * is): owned by them and not writable by group or others. Compiled code another user could
 * write is code they could have this one run: `sudo` keeping the invoking user's HOME, an
 * XDG_CACHE_HOME of /tmp.
 * @param {string} folder
 */
function onlyMineToWrite(folder) {
  const uid = process.getuid?.();
  if (uid === undefined) return true; // Windows: no owners to compare
  for (let at = folder; ; at = dirname(at)) {
    try {
      const { uid: owner, mode } = statSync(at);
      return owner === uid && (mode & 0o022) === 0;
    } catch {
      if (dirname(at) === at) return false;
    }
  }
}

// An older Node fails on the first TypeScript module with an error that names none of this.
const MINIMUM_NODE_MAJOR = 24;
if (Number(process.versions.node.split('.')[0]) < MINIMUM_NODE_MAJOR) {
  process.stderr.write(
    `meshbox: needs Node ${MINIMUM_NODE_MAJOR} or later, and this is ${process.version}; the project's is in node_modules/.bin: export PATH="$PWD/node_modules/.bin:$PATH" in the project's folder\n`,
  );
  process.exit(1);
}

// NODE_COMPILE_CACHE names another folder (Node has then turned the cache on already);
// NODE_DISABLE_COMPILE_CACHE=1 keeps it off. A folder that cannot be written leaves it off, quietly.
const cacheFolder = process.env.NODE_COMPILE_CACHE ? undefined : userCacheFolder();
if (cacheFolder !== undefined && onlyMineToWrite(cacheFolder)) nodeModule.enableCompileCache(join(cacheFolder, 'meshbox', 'node-compile-cache'));

const { runCli } = await import('./program.ts');
// exitCode rather than exit(): stdout may still be draining into a pipe. Output that could not
// be written has set it already.
const status = await runCli(process.argv.slice(2));
process.exitCode = Math.max(status, Number(process.exitCode ?? 0));
