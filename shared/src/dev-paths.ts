import { resolve } from 'node:path';

/** The checkout meshbox runs from; development defaults live under it. */
export const REPO_ROOT = resolve(import.meta.dirname, '../..');

/** Where `npm run setup` writes the development PKI, shared key and demo mailbox profiles (git-ignored). */
export const DEV_CERTS_DIR = resolve(REPO_ROOT, 'certs');
