import { readFileSync } from 'node:fs';

/**
 * File descriptors a process needs beyond its client connections: Redis and object-storage
 * sockets (a pool per backend), files, stdio. Past the limit a new socket fails with EMFILE:
 * clients' connections are then dropped unlogged by Node, and the backends' refused (503s).
 */
export const DESCRIPTORS_BESIDE_CONNECTIONS = 1_000;

/** The process's limit on open files (Node raises the soft one to the hard one at start); undefined where /proc says nothing. */
export function openFileLimit(limits = readProcessLimits()): number | undefined {
  const soft = /^Max open files\s+(\d+|unlimited)\s/m.exec(limits ?? '')?.[1];
  if (soft === undefined) return undefined;
  return soft === 'unlimited' ? Number.POSITIVE_INFINITY : Number(soft);
}

function readProcessLimits(): string | undefined {
  try {
    return readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return undefined;
  }
}

/** Whether `maxConnections` leaves the process descriptors enough for its backends under `limit`. */
export function connectionsFitOpenFileLimit(maxConnections: number, limit: number | undefined): boolean {
  return limit === undefined || maxConnections + DESCRIPTORS_BESIDE_CONNECTIONS <= limit;
}
