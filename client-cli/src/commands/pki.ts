/**
 * The PKI helpers, loaded when a command uses them: they bring node-forge (1.6 MiB of heap that
 * every full garbage collection marks), which `meshbox serve`, the server, has no use for.
 */
export function loadPki(): Promise<typeof import('../../../shared/src/pki/index.ts')> {
  return import('../../../shared/src/pki/index.ts');
}
