import { connectionsLostBy, masters, type RedisClient } from './redis-client.ts';

/** What MESHBOX_REDIS_WAIT_REPLICAS and MESHBOX_REDIS_WAIT_TIMEOUT_SECONDS ask: how many replicas must hold a write before it is answered, and how long to wait for them. */
export interface ReplicaSetting {
  /** 0: no waiting (Redis's replication is asynchronous, as by default). */
  readonly replicas: number;
  readonly timeoutMs: number;
}

export const NO_REPLICA_CONFIRMATION: ReplicaSetting = { replicas: 0, timeoutMs: 0 };

/**
 * How long a WAIT may take while the replicas are known to be behind: each WAIT holds its
 * connection, and every request's commands queue behind it, so while the replicas are away the
 * full timeout would stall every request of the process that long, reads too. Long enough for a
 * replica that is back to answer the acknowledgement WAIT asks of it.
 */
const PROBE_TIMEOUT_MS = 50;

/** The writes of a request could not be confirmed on the replicas asked for: they may be lost in a failover. */
export class ReplicasBehindError extends Error {
  constructor(detail: string) {
    super(`not confirmed on the Redis replicas asked for (MESHBOX_REDIS_WAIT_REPLICAS): ${detail}`);
    this.name = 'ReplicasBehindError';
  }
}

/**
 * Redis replicates asynchronously: a primary that fails over loses what it had not passed on,
 * answers already given included. With replicas asked for, a request whose writes a client counts
 * on (http/middleware/replica-confirmation.ts) is answered only once Redis's WAIT has seen them on
 * that many replicas of every master. WAIT covers
 * every write made before it on its connection, so one WAIT, sent at the end of a turn of the
 * event loop, covers the writes of every request waiting in that turn (one connection per master
 * carries them all: redis-client.ts).
 */
export class ReplicaConfirmation {
  readonly #redis: RedisClient;
  readonly #setting: ReplicaSetting;
  #turnWait: Promise<number> | undefined;
  #behind = false;

  constructor(redis: RedisClient, setting: ReplicaSetting) {
    this.#redis = redis;
    this.#setting = setting;
  }

  get required(): boolean {
    return this.#setting.replicas > 0;
  }

  /** Taken before a request writes, and given to `confirm` after. */
  mark(): number {
    return connectionsLostBy(this.#redis);
  }

  /**
   * Resolves once every write issued so far is on the replicas asked for; throws
   * ReplicasBehindError when they did not all have it in time, or when a connection to Redis was
   * lost since `mark`: the WAIT, sent again on a new connection (perhaps to a new primary, after a
   * failover), covers none of the writes made on the old one.
   */
  async confirm(mark: number): Promise<void> {
    const confirmed = await this.#waitAtTurnEnd();
    if (connectionsLostBy(this.#redis) !== mark) throw new ReplicasBehindError('a connection to Redis was lost meanwhile');
    if (confirmed < this.#setting.replicas) throw new ReplicasBehindError(`${confirmed} of ${this.#setting.replicas} replicas had them in time`);
  }

  #waitAtTurnEnd(): Promise<number> {
    this.#turnWait ??= new Promise((resolve) => setImmediate(resolve)).then(() => {
      this.#turnWait = undefined;
      return this.#waitOnEveryMaster();
    });
    return this.#turnWait;
  }

  async #waitOnEveryMaster(): Promise<number> {
    const { replicas, timeoutMs } = this.#setting;
    const timeout = this.#behind ? Math.min(timeoutMs, PROBE_TIMEOUT_MS) : timeoutMs;
    const counts = await Promise.all(masters(this.#redis).map((node) => node.wait(replicas, timeout)));
    const fewest = Math.min(...counts);
    this.#behind = fewest < replicas;
    return fewest;
  }
}
