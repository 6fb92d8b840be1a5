import { cpus, totalmem } from 'node:os';
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { REPO_ROOT } from '../../shared/src/dev-paths.ts';

const REPORT = resolve(REPO_ROOT, 'docs/benchmarks.md');

/** The machine a figure was measured on, written beside it. */
export function machineDescription(): string {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  const memory = (totalmem() / 1024 ** 3).toFixed(0);
  return `${cpu}, ${cpus().length} cores, ${memory} GiB RAM, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
}

/**
 * Replaces the section between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` in
 * docs/benchmarks.md (appending it the first time), so each benchmark keeps its latest run.
 */
export async function writeReportSection(name: string, markdown: string): Promise<void> {
  const start = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const current = await readFile(REPORT, 'utf8').catch(() => '# Benchmarks\n');
  const section = `${start}\n${markdown.trim()}\n${end}`;
  const pattern = new RegExp(`${start}[\\s\\S]*?${end}`);
  const next = pattern.test(current) ? current.replace(pattern, section) : `${current.trimEnd()}\n\n${section}\n`;
  await writeFile(REPORT, next);
}
