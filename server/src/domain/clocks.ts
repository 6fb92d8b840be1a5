/**
 * How far apart the clocks of one deployment's processes (API and worker processes, on several
 * hosts) may be: operations.md asks for NTP, and the allowances made for clocks hold within this.
 */
export const PROCESS_CLOCKS_APART_MS = 5 * 60_000;
