import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/**
 * mex-Content-Checksum is free text in MESH; meshbox writes, and checks, `sha256:<hex>`, and
 * checks `md5:<hex>` as well. Any other form is passed on unchecked.
 */
export type ChecksumAlgorithm = 'sha256' | 'md5';

export interface Checksum {
  readonly algorithm: ChecksumAlgorithm;
  /** Lower case. */
  readonly hex: string;
}

const HEX_LENGTH: Readonly<Record<ChecksumAlgorithm, number>> = { sha256: 64, md5: 32 };

/** The checksum a mex-Content-Checksum value states, if it is one we can verify. */
export function parseChecksum(value: string | null | undefined): Checksum | undefined {
  const match = /^\s*(sha256|md5)\s*:\s*([0-9a-f]+)\s*$/i.exec(value ?? '');
  if (!match) return undefined;
  const algorithm = (match[1] ?? '').toLowerCase() as ChecksumAlgorithm;
  const hex = (match[2] ?? '').toLowerCase();
  return hex.length === HEX_LENGTH[algorithm] ? { algorithm, hex } : undefined;
}

export function formatChecksum(checksum: Checksum): string {
  return `${checksum.algorithm}:${checksum.hex}`;
}

/**
 * Hashes a whole file, streaming (never all of it in memory). `onBytes` sees each block's
 * size, for a progress bar; `signal` stops the read (a large file takes a while).
 */
export async function fileChecksum(
  path: string,
  algorithm: ChecksumAlgorithm,
  onBytes?: (bytes: number) => void,
  signal?: AbortSignal,
): Promise<Checksum> {
  const hash: Hash = createHash(algorithm);
  for await (const block of createReadStream(path, signal ? { signal } : {})) {
    const data = block as Buffer;
    hash.update(data);
    onBytes?.(data.length);
  }
  return { algorithm, hex: hash.digest('hex') };
}
