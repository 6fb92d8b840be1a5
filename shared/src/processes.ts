import { readFileSync } from 'node:fs';

/**
 * Whether a process exists. A zombie counts as dead: a daemon killed with -9 may linger
 * as one until it is reaped, and waiting for it to "exit" would never end.
 */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // /proc/PID/stat: "pid (comm) STATE ..."; comm may contain spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc (macOS): kill(0) is all we have
  }
}

/**
 * What tells a process from a later one given the same pid (after a reboot, as pids start
 * again from 1, or pids wrapping round): the boot it runs in and the moment it started, from
 * Linux's /proc; undefined where there is none (or the process is gone).
 */
export function processIdentity(pid: number): string | undefined {
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "pid (comm) ": the state is field 3, the start time (in clock ticks since boot) field 22.
    const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return startTime ? `${boot}/${startTime}` : undefined;
  } catch {
    return undefined;
  }
}
