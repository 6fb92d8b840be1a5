import { connectionsLostBy, infoSection, masters, type RedisClient } from './redis-client.ts';

/** What MESHBOX_REDIS_WAIT_REPLICAS and MESHBOX_REDIS_WAIT_TIMEOUT_SECONDS ask: how many replicas must hold a write before it is answered, and how long to wait for them. */
export interface ReplicaSetting {
  /** 0: no waiting (Redis's replication is asynchronous, as by default). */
  readonly replicas: number;
  readonly timeoutMs: number;
}

export const NO_REPLICA_CONFIRMATION: ReplicaSetting = { replicas: 0, timeoutMs: 0 };

/** How often, while the replicas are behind, Redis is asked whether they are back. */
const RECHECK_MS = 1000;

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
 * that many replicas of every master. WAIT covers every write made before it on its connection,
 * so one WAIT, sent at the end of a turn of the event loop, covers the writes of every request
 * waiting in that turn (one connection per master carries them all: redis-client.ts).
 */
export class ReplicaConfirmation {
  readonly #redis: RedisClient;
  readonly #setting: ReplicaSetting;
  #turnWait: Promise<number> | undefined;
  /**
   * Set when a WAIT came back short. Each WAIT holds its connection, every request's commands
   * queued behind it, reads too: while the replicas are away, a WAIT per turn would stall the
   * process that long, again and again. So confirmations then fail at once, without a WAIT,
   * until Redis reports enough replicas online (asked at most every RECHECK_MS).
   */
  #behind = false;
  #recheck: { readonly at: number; readonly answer: Promise<boolean> } | undefined;

  constructor(redis: RedisClient, setting: ReplicaSetting) {
    this.#redis = redis;
    this.#setting = setting;
  }

  get required(): boolean {
    return this.#setting.replicas > 0;
  }

  /** Whether confirmations are refused at once now, a WAIT having come back short (until Redis reports the replicas back). */
  get behind(): boolean {
    return this.#behind;
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
    if (this.#behind && !(await this.#replicasBack())) throw new ReplicasBehindError('too few replicas keep up');
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
    const nodes = masters(this.#redis);
    const counts = await Promise.all(nodes.map((node) => node.wait(replicas, timeoutMs))).catch((error: unknown) => {
      // Refused by an ACL, or sent to a replica: as unconfirmed as a WAIT that came back short.
      throw new ReplicasBehindError(`WAIT failed: ${(error as Error).message}`);
    });
    const fewest = nodes.length === 0 ? 0 : Math.min(...counts);
    if (fewest < replicas) this.#behind = true;
    return fewest;
  }

  /**
   * The masters (host:port) whose INFO reports fewer replicas online than asked for: a
   * confirmation of their writes would fail now. None known when INFO is refused (an ACL): then
   * only a WAIT tells.
   */
  async mastersShort(): Promise<string[]> {
    const nodes = masters(this.#redis);
    if (nodes.length === 0) return ['no master'];
    const infos = await Promise.all(nodes.map((node) => infoSection(node, 'replication')));
    return nodes.flatMap((node, index) => {
      const info = infos[index];
      return info !== undefined && replicasOnline(info) < this.#setting.replicas ? [`${node.options.host}:${node.options.port}`] : [];
    });
  }

  /** Whether no master reports fewer replicas online than asked for; asked at most every RECHECK_MS, false in between. */
  #replicasBack(): Promise<boolean> {
    const now = Date.now();
    if (this.#recheck && now - this.#recheck.at < RECHECK_MS) return this.#recheck.answer.then(() => !this.#behind);
    const answer = this.mastersShort().then(
      (short) => short.length === 0,
      () => false,
    );
    this.#recheck = { at: now, answer };
    return answer.then((back) => {
      if (back) this.#behind = false;
      return back;
    });
  }
}

/**
 * Replicas in an INFO replication answer (`slave0:ip=…,state=online,offset=…,lag=0`) that are
 * connected and synced; whether they keep up within the timeout only a WAIT tells.
 */
function replicasOnline(info: string): number {
  return [...info.matchAll(/^slave\d+:(?:.*,)?state=online(?:,|\r?$)/gm)].length;
}
