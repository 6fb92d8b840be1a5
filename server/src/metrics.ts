import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { sharedRead } from './shared-read.ts';
import { within } from './time-limit.ts';

/** Well inside a Prometheus scrape's default 10 s timeout. */
const QUEUE_COUNT_TIMEOUT_MS = 2_000;
/** How long a count of the schedule stands for the scrapes after it. */
const QUEUE_COUNT_KEPT_MS = 1_000;

export interface JobCounts {
  readonly counts: () => Promise<Record<string, number>>;
}

/**
 * Prometheus metrics of one process: requests by route and status, bytes in and out, lifecycle
 * job durations and failures, queue depth (worker processes only: every process counting the
 * one shared schedule would multiply it in a sum), and Node's own process metrics. One
 * registry per app, so several apps (tests) in one process do not collide.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'method' | 'status'>;
  readonly requestDuration: Histogram<'route' | 'method'>;
  readonly bytesReceived: Counter;
  readonly bytesSent: Counter;
  readonly jobDuration: Histogram<'queue'>;
  readonly jobFailures: Counter<'queue'>;
  /** When a sweep last ran to its end: a worker stuck (a backend not answering) shows as an age. */
  readonly sweepCompleted: Gauge<'queue'>;
  readonly handshakeFailures: Counter<'reason'>;
  readonly connectionsRefused: Counter;
  readonly clientConnectionsRefused: Counter;
  readonly payloadsMissing: Counter;
  /** Only once a CRL is loaded: a process without one exports no date (0 would read as long past). */
  #revocationListNextUpdate: Gauge | undefined;

  constructor(queue?: { readonly name: string } & JobCounts) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'meshbox_http_requests_total',
      help: 'HTTP requests answered, by route, method and status',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'meshbox_http_request_duration_seconds',
      help: 'Time to answer HTTP requests, by route and method',
      labelNames: ['route', 'method'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
      registers,
    });
    this.bytesReceived = new Counter({ name: 'meshbox_bytes_received_total', help: 'Bytes received per request over its connection (TLS framing included)', registers });
    this.bytesSent = new Counter({ name: 'meshbox_bytes_sent_total', help: 'Bytes sent per request over its connection (TLS framing included)', registers });
    this.jobDuration = new Histogram({
      name: 'meshbox_job_duration_seconds',
      help: "Time a message's lifecycle check took, per check",
      labelNames: ['queue'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers,
    });
    this.jobFailures = new Counter({ name: 'meshbox_job_failures_total', help: "Lifecycle checks that failed, and sweeps or audit trims that failed as a whole", labelNames: ['queue'], registers });
    this.sweepCompleted = new Gauge({
      name: 'meshbox_job_last_completed_timestamp_seconds',
      help: 'When a lifecycle sweep last ran to its end (Unix time), in worker processes',
      labelNames: ['queue'],
      registers,
    });
    this.handshakeFailures = new Counter({
      name: 'meshbox_tls_handshake_failures_total',
      help: 'TLS handshakes that failed (no or unknown certificate, revoked, stale CRL), by OpenSSL reason',
      labelNames: ['reason'],
      registers,
    });
    this.connectionsRefused = new Counter({
      name: 'meshbox_connections_refused_total',
      help: 'Connections closed as they arrived, the process holding MESHBOX_MAX_CONNECTIONS',
      registers,
    });
    this.clientConnectionsRefused = new Counter({
      name: 'meshbox_client_connections_refused_total',
      help: 'Connections refused (their requests answered 429, or closed unused after 2 s), their client holding MESHBOX_MAX_CONNECTIONS_PER_CLIENT connections to the process',
      registers,
    });
    this.payloadsMissing = new Counter({
      name: 'meshbox_payload_chunks_missing_total',
      help: 'Downloads that found a chunk of a message still downloadable missing from object storage: lost data, alert on any',
      registers,
    });
    if (queue) {
      // Present from the start at 0, so that rate() sees the first failure.
      this.jobFailures.inc({ queue: queue.name }, 0);
      // Scrapes at once share one count, which stands a second: each is dozens of Redis commands.
      const counts = sharedRead(() => within(queue.counts(), QUEUE_COUNT_TIMEOUT_MS), QUEUE_COUNT_KEPT_MS);
      new Gauge({
        name: 'meshbox_queue_jobs',
        // Every worker counts the whole schedule, which they share: max() over processes, not sum().
        help: 'Messages in the lifecycle schedule, shared by all workers (take max() over processes): scheduled (all), due (now), failing (being retried), held (claimed by a worker, not yet done)',
        labelNames: ['queue', 'state'],
        registers,
        // Redis away must not fail the whole scrape (the request and error counters matter most then): no sample instead.
        async collect() {
          try {
            for (const [state, count] of Object.entries(await counts())) this.set({ queue: queue.name, state }, count);
          } catch {
            this.reset();
          }
        },
      });
    }
    collectDefaultMetrics({ register: this.registry, prefix: 'meshbox_' });
  }

  /** The server's own certificate, which clients refuse once it has expired. */
  serverCertificate(notAfter: Date): void {
    new Gauge({
      name: 'meshbox_tls_certificate_expiry_timestamp_seconds',
      help: "When the server's TLS certificate (MESHBOX_TLS_CERT) expires (its notAfter, Unix time): past it, every client refuses the server",
      registers: [this.registry],
    }).set(notAfter.getTime() / 1000);
  }

  /** Whether sends, chunks and acknowledgements are being refused for Redis replicas behind (MESHBOX_REDIS_WAIT_REPLICAS set). */
  replicaConfirmation(behind: () => boolean): void {
    new Gauge({
      name: 'meshbox_redis_replicas_behind',
      help: 'Whether this process refuses sends, chunk uploads and acknowledgements (503) because the Redis replicas MESHBOX_REDIS_WAIT_REPLICAS asks for did not confirm a write in time (1) or not (0); present only with the setting',
      registers: [this.registry],
      collect() {
        this.set(behind() ? 1 : 0);
      },
    });
  }

  /** The CRL loaded (again): its nextUpdate, or none (never stale). */
  revocationListLoaded(nextUpdate: Date | undefined): void {
    this.#revocationListNextUpdate ??= new Gauge({
      name: 'meshbox_crl_next_update_timestamp_seconds',
      help: 'When the loaded CRL is due for replacement (its nextUpdate, Unix time): past it, every client is refused',
      registers: [this.registry],
    });
    this.#revocationListNextUpdate.set(nextUpdate ? nextUpdate.getTime() / 1000 : Infinity);
  }
}
