/** MESH writes UTC times as compact digits: `yyyyMMddHHmmss` (status) or its first 12 (tokens). */
export function compactUtcSeconds(at: Date): string {
  return at.toISOString().replace(/\D/g, '').slice(0, 14);
}
