import { readFileSync } from 'node:fs';
import type { RedisClient } from './redis-client.ts';

type ScriptCommand = (numberOfKeys: number, ...keysAndArgs: (string | number | Buffer)[]) => Promise<unknown>;

/** Every script made so far: each client openRedis makes has them all defined from the start. */
const scripts: LuaScript[] = [];

/**
 * A Lua script from `store/lua/`. Each multi-key state change is one script, so its atomicity
 * is visible in one file. It runs as an ioredis custom command: on each connection its first
 * call sends the source (EVAL), later ones its digest (EVALSHA). A connection made anew (Redis
 * restarted, its script cache empty) so never meets NOSCRIPT, whose retry would run the script
 * after commands issued behind it: a poll could overtake the delivery of a message just sent.
 */
export class LuaScript {
  readonly name: string;
  /** The client method the script is defined as (see scriptCommand). */
  readonly command: string;
  readonly #source: string;

  /** `includes` are fragments from `lua/includes/`, prepended so scripts can share functions. */
  constructor(name: string, includes: readonly string[] = []) {
    this.name = name;
    this.command = scriptCommand(name);
    this.#source = [...includes.map((include) => `includes/${include}`), name]
      .map((file) => readFileSync(new URL(`./lua/${file}.lua`, import.meta.url), 'utf8'))
      .join('\n');
    scripts.push(this);
  }

  async run(redis: RedisClient, keys: readonly string[], args: readonly (string | number | Buffer)[]): Promise<unknown> {
    // A client not made by openRedis (a test's), or a script of a module loaded after the client was made.
    if (!this.#commandOf(redis)) this.defineOn(redis);
    return this.#commandOf(redis)!.call(redis, keys.length, ...keys, ...args);
  }

  /**
   * Best before the client's first command: an auto-pipelined batch has the scripts defined when
   * it began, and one begun before this would not know it.
   */
  defineOn(redis: RedisClient): void {
    redis.defineCommand(this.command, { lua: this.#source });
  }

  #commandOf(redis: RedisClient): ScriptCommand | undefined {
    const command = (redis as unknown as Record<string, unknown>)[this.command];
    return typeof command === 'function' ? (command as ScriptCommand) : undefined;
  }
}

/** Defines every script made so far on a new client (openRedis does). */
export function defineScripts(redis: RedisClient): RedisClient {
  for (const script of scripts) script.defineOn(redis);
  return redis;
}

/** The name of the client method that runs script `name` (a test may stand in for it). */
export function scriptCommand(name: string): string {
  return `meshboxScript_${name}`;
}
