import { join } from 'node:path';
import { DEV_CERTS_DIR } from '../shared/src/dev-paths.ts';

/** The two demo mailboxes `npm run setup` registers and `npm run demo` uses. */
export const DEMO_MAILBOXES = [
  { id: 'LAB001', name: 'Riverside Hospital pathology laboratory', odsCode: 'RRV', workflows: ['PATH_TEST_RESULTS'] },
  { id: 'GP001', name: 'Riverside Medical Practice', odsCode: 'A81001', workflows: ['PATH_TEST_RESULTS'] },
] as const;

/** The CLI profile (`meshbox --profile <file>`) setup writes for a demo mailbox. */
export function demoProfilePath(mailboxId: string): string {
  return join(DEV_CERTS_DIR, 'mailboxes', `${mailboxId}.json`);
}
