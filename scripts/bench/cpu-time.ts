import { readFileSync } from 'node:fs';

/** Fields of Linux's /proc/<pid>/stat after the parenthesised command name (the 3rd onwards); times in clock ticks (100 a second). */
function statFields(pid: number | 'self'): string[] {
  return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
}

/** CPU seconds (user + system) a process has used so far: utime and stime. */
export function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU seconds (user + system) this process's waited-for children have used: cutime and cstime. */
export function childrenCpuSeconds(): number {
  const fields = statFields('self');
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

/** Measures the CPU time several processes spend while `action` runs. */
export async function measureCpu<T>(pids: Record<string, number>, action: () => Promise<T>): Promise<{ result: T; seconds: Record<string, number> }> {
  const before = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
  const result = await action();
  const seconds = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuSeconds(pid) - before[name]!]));
  return { result, seconds };
}
