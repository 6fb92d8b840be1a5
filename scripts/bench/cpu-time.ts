import { readFileSync } from 'node:fs';

/** CPU seconds (user + system) a process has used so far, from Linux's /proc. */
export function cpuSeconds(pid: number): number {
  // Fields after the parenthesised command name: utime and stime are the 12th and 13th, in clock ticks (100 a second).
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Measures the CPU time several processes spend while `action` runs. */
export async function measureCpu<T>(pids: Record<string, number>, action: () => Promise<T>): Promise<{ result: T; seconds: Record<string, number> }> {
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
  const result = await action();
  const seconds = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid) - before[name]!]));
  return { result, seconds };
}
