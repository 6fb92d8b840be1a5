import { Agent, request } from 'node:https';

export interface LoadResult {
  readonly operations: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
}

/** An HTTPS request on a keep-alive agent, resolving with the status and body once it is read. */
export function call(
  agent: Agent,
  origin: string,
  options: { method: string; path: string; headers?: Record<string, string>; body?: Buffer | string },
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(options.path, origin), { method: options.method, agent, headers: options.headers ?? {} }, (res) => {
      let body = '';
      res.on('data', (part: Buffer) => (body += part.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

function percentile(sorted: readonly number[], fraction: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]!;
}

/** The middle value (of an even count, the upper of the two): a round actually measured, for rounds compared one by one. */
export function median(values: readonly number[]): number {
  return percentile([...values].sort((a, b) => a - b), 0.5);
}

/**
 * Runs `operation` from `concurrency` loops for `durationMs`, counting completed operations
 * (an operation may be several requests) and their latencies. Bounded in time, as the machine is shared.
 */
export async function runLoad(concurrency: number, durationMs: number, operation: (worker: number) => Promise<boolean>): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (performance.now() < deadline) {
        const begun = performance.now();
        const ok = await operation(worker).catch(() => false);
        if (ok) latencies.push(performance.now() - begun);
        else errors++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    operations: latencies.length,
    perSecond: latencies.length / elapsed,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    errors,
  };
}
