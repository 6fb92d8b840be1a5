import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RedisClient } from './redis-client.ts';

/**
 * A Lua script from `store/lua/`, run with EVALSHA (falling back to EVAL once after a
 * Redis restart or SCRIPT FLUSH). Each multi-key state change is one script, so its
 * atomicity is visible in one file.
 */
export class LuaScript {
  readonly name: string;
  readonly #source: string;
  readonly #sha: string;

  /** `includes` are fragments from `lua/includes/`, prepended so scripts can share functions. */
  constructor(name: string, includes: readonly string[] = []) {
    this.name = name;
    this.#source = [...includes.map((include) => `includes/${include}`), name]
      .map((file) => readFileSync(new URL(`./lua/${file}.lua`, import.meta.url), 'utf8'))
      .join('\n');
    this.#sha = createHash('sha1').update(this.#source).digest('hex');
  }

  async run(redis: RedisClient, keys: readonly string[], args: readonly (string | number | Buffer)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.#sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (error instanceof Error && error.message.startsWith('NOSCRIPT')) {
        return redis.eval(this.#source, keys.length, ...keys, ...args);
      }
      throw error;
    }
  }
}
