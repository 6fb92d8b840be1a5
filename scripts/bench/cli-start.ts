/**
 * `node scripts/bench/cli-start.ts [--runs 20] [--no-write]`
 *
 * What one `meshbox` command costs before it does anything: wall time and CPU time (user +
 * system) of `meshbox inbox --help` (a user command: every module one loads at start) and
 * `meshbox admin --help` (an operator command, loading the server's stores too), with Node's
 * compile cache (as the command keeps it) and without (NODE_DISABLE_COMPILE_CACHE=1),
 * beside a bare `node -e 0`, runs alternating. Matters to a user whose scheduler starts a
 * command a minute, and to the tests, which start hundreds.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../../shared/src/dev-paths.ts';
import { childrenCpuSeconds } from './cpu-time.ts';
import { median } from './load.ts';
import { machineDescription, writeReportSection } from './report.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' }, 'no-write': { type: 'boolean', default: false } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a whole number of at least 1, not ${values.runs}`);

const MAIN = resolve(REPO_ROOT, 'client-cli/src/main.js');

interface Cost {
  readonly wallMs: number;
  readonly cpuMs: number;
}

function runOnce(args: readonly string[], env: NodeJS.ProcessEnv): Cost {
  const cpuBefore = childrenCpuSeconds();
  const started = performance.now();
  const run = spawnSync(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const wallMs = performance.now() - started;
  if (run.status !== 0) throw new Error(`node ${args.join(' ')} exited ${run.status}: ${run.stderr}`);
  return { wallMs, cpuMs: (childrenCpuSeconds() - cpuBefore) * 1000 };
}

const cacheHome = await mkdtemp(join(tmpdir(), 'meshbox-cli-start-'));
const { NODE_COMPILE_CACHE: _elsewhere, NODE_DISABLE_COMPILE_CACHE: _off, ...environment } = process.env;
const withCache = { ...environment, XDG_CACHE_HOME: cacheHome };
const withoutCache = { ...withCache, NODE_DISABLE_COMPILE_CACHE: '1' };
const variants = [
  { name: 'bare `node -e 0`', args: ['-e', '0'], env: withoutCache },
  ...['inbox', 'admin'].flatMap((command) => [
    { name: `\`meshbox ${command} --help\`, no compile cache`, args: [MAIN, command, '--help'], env: withoutCache },
    { name: `\`meshbox ${command} --help\`, compile cache`, args: [MAIN, command, '--help'], env: withCache },
  ]),
];
try {
  runOnce([MAIN, '--help'], withCache); // fills the cache (every module), as a user's first commands do
  const costs = variants.map((): Cost[] => []);
  for (let round = 0; round < runs; round++) variants.forEach((variant, i) => costs[i]!.push(runOnce(variant.args, variant.env)));
  const lines = [
    '## CLI start (`scripts/bench/cli-start.ts`)',
    '',
    `What a command costs before its work: ${runs} runs of each, alternating; medians. The`,
    'compile cache is Node\'s, kept in the user\'s cache folder by `client-cli/src/main.js`.',
    '',
    `Machine: ${machineDescription()}.`,
    '',
    '| process | wall (ms) | CPU, user + system (ms) |',
    '|---|---|---|',
    ...variants.map(
      (variant, i) =>
        `| ${variant.name} | ${median(costs[i]!.map((cost) => cost.wallMs)).toFixed(0)} | ${median(costs[i]!.map((cost) => cost.cpuMs)).toFixed(0)} |`,
    ),
  ];
  console.log(lines.join('\n'));
  if (!values['no-write']) await writeReportSection('cli-start', lines.join('\n'));
} finally {
  await rm(cacheHome, { recursive: true, force: true });
}
