/** What a server process does: api serves MESH requests, worker runs lifecycle jobs (and serves only health and metrics), all does both. */
export const SERVER_ROLES = ['all', 'api', 'worker'] as const;

export type ServerRole = (typeof SERVER_ROLES)[number];
