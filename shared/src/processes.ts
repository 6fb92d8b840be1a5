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
    return procStatFields(pid)[0] !== 'Z';
  } catch {
    return true; // no /proc (macOS): kill(0) is all we have
  }
}

/**
 * /proc/PID/stat after "pid (comm) " (comm may contain spaces and parentheses): its fields from
 * the state (field 3) on. Throws where there is no /proc, or no such process.
 */
function procStatFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/**
 * What tells a process from a later one given the same pid (after a reboot, as pids start
 * again from 1, or pids wrapping round): the boot it runs in and the moment it started, from
 * Linux's /proc; undefined where there is none (or the process is gone).
 */
export function processIdentity(pid: number): string | undefined {
  try {
    // The start time (in clock ticks since boot) is field 22.
    const startTime = procStatFields(pid)[19];
    return startTime ? `${bootId()}/${startTime}` : undefined;
  } catch {
    return undefined;
  }
}

/** Linux's id of the running boot; throws where there is none. */
function bootId(): string {
  return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
}

/** A moment on the machine's monotonic clock: the time since its boot, which setting the clock does not move. */
export interface BootMoment {
  readonly bootId: string;
  readonly sinceBootMs: number;
}

/** Now on the monotonic clock (Linux); null where there is no boot id to tell one boot's clock from the next. */
export function bootMoment(): BootMoment | null {
  try {
    return { bootId: bootId(), sinceBootMs: Number(process.hrtime.bigint() / 1_000_000n) };
  } catch {
    return null;
  }
}

/**
 * Milliseconds from `then` to now by the monotonic clock; undefined when `then` was in another
 * boot (or is unknown), as the clock starts again at each boot, or lies ahead of now, which
 * this clock never does (a note spoilt by hand).
 */
export function msSinceBootMoment(then: BootMoment | null): number | undefined {
  const now = bootMoment();
  const elapsed = then !== null && now !== null && now.bootId === then.bootId ? now.sinceBootMs - then.sinceBootMs : undefined;
  return elapsed !== undefined && elapsed >= 0 ? elapsed : undefined;
}
