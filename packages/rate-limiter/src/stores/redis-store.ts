import { type Logger, parseOptions, silentLogger } from '@noa/core';
import type { Cluster, Redis } from 'ioredis';
import { z } from 'zod';
import type { AutoBlockPolicy } from '../auto-block.js';
import type { Decision } from '../decision.js';
import { RateLimitStoreError } from '../errors.js';
import { capacityOf, type LimitPolicy } from '../policy.js';
import { algorithmCodes, checkScript, checkScriptSha } from './lua-script.js';
import type { ConsumeOutcome, ConsumeRequest, RateLimitStore } from './store.js';

/** Options of {@link RedisStore}. */
export const redisStoreOptionsSchema = z
  .object({
    /** An ioredis client: `new Redis(…)` or `new Cluster(…)` (see `recommendedRedisOptions`). */
    client: z.custom<Redis | Cluster>(
      (value) => typeof (value as Redis)?.evalsha === 'function',
      'must be an ioredis Redis or Cluster client',
    ),
    /** Prefix of every key; the key itself is wrapped in `{…}` so all of its state shares a Cluster slot. */
    prefix: z.string().default('noa:rl:'),
    /** Logger for configuration warnings. */
    logger: z
      .custom<Logger>((value) => typeof (value as Logger)?.warn === 'function', 'must be a Logger')
      .optional(),
  })
  .strict();

/** Options of {@link RedisStore} as written by users. */
export type RedisStoreOptions = z.input<typeof redisStoreOptionsSchema>;

/** Most keys one script call carries: small enough that several calls overlap (Redis works on one
 * while the client prepares the next), large enough to amortise the call. */
const maxGroupsPerCall = 32;

/**
 * ioredis options that keep a check from waiting on a dead Redis: fail at once while
 * disconnected instead of queueing, and do not retry a command. The limiter's deadline bounds
 * the rest (a connected but stalled server).
 */
export const recommendedRedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  connectTimeout: 2_000,
} as const;

/**
 * Redis store (standalone or Cluster): one Lua script (EVALSHA, falling back to EVAL on
 * NOSCRIPT) per check or per batch of checks of one key, atomic over all the key's limits,
 * timed by Redis `TIME` so that app servers' clocks do not matter.
 */
export class RedisStore implements RateLimitStore {
  readonly kind = 'redis';
  readonly remote = true;
  readonly #client: Redis | Cluster;
  readonly #prefix: string;
  /** Until the client's first `ready`, calls wait for it (bounded by the limiter's deadline). */
  #firstReady: Promise<void> | undefined;
  #everReady = false;

  constructor(options: RedisStoreOptions) {
    const parsed = parseOptions('RedisStore', redisStoreOptionsSchema, options);
    this.#client = parsed.client;
    this.#prefix = parsed.prefix;
    const clientOptions = (parsed.client as Redis).options as { enableOfflineQueue?: boolean } | undefined;
    if (clientOptions?.enableOfflineQueue !== false)
      (parsed.logger ?? silentLogger).warn(
        'RedisStore: the ioredis client queues commands while disconnected; use recommendedRedisOptions',
        { component: 'rate-limiter' },
      );
  }

  /** One script call for `costs` consecutive requests of `key` over all its limits. */
  consume(
    key: string,
    limits: readonly LimitPolicy[],
    costs: readonly number[],
    block: AutoBlockPolicy | undefined,
  ): Promise<ConsumeOutcome[]> {
    return this.#runGroups([{ key, limits, costs }], block).then((outcomes) => outcomes[0]!);
  }

  /**
   * Standalone Redis: up to {@link maxGroupsPerCall} keys per script call (a few calls, sent
   * together, for a whole tick of checks). Cluster: one call per key, since a script's keys must share a
   * slot.
   */
  async consumeMany(
    requests: readonly ConsumeRequest[],
    block: AutoBlockPolicy | undefined,
  ): Promise<ConsumeOutcome[][]> {
    if ((this.#client as Cluster).isCluster === true || requests.length === 1)
      return Promise.all(requests.map((request) => this.#runGroups([request], block).then((all) => all[0]!)));
    const chunks: Promise<ConsumeOutcome[][]>[] = [];
    for (let start = 0; start < requests.length; start += maxGroupsPerCall)
      chunks.push(this.#runGroups(requests.slice(start, start + maxGroupsPerCall), block));
    return (await Promise.all(chunks)).flat();
  }

  /** Deletes the key's hash and sliding-log sets. */
  async reset(key: string): Promise<void> {
    const hashKey = `${this.#prefix}{${key}}`;
    // The log keys of up to 16 limits; every key shares the hash tag, so one DEL suffices.
    const logs = Array.from({ length: 16 }, (_, index) => `${hashKey}:log${index + 1}`);
    await this.#client.del(hashKey, ...logs);
  }

  /** The client belongs to the caller, who closes it. */
  async close(): Promise<void> {}

  async #runGroups(
    requests: readonly ConsumeRequest[],
    block: AutoBlockPolicy | undefined,
  ): Promise<ConsumeOutcome[][]> {
    const keys: string[] = [];
    const args: (string | number)[] = [requests.length];
    if (block === undefined) args.push(0);
    else
      args.push(
        1,
        block.violations,
        block.withinMs,
        block.blockMs,
        block.multiplier,
        block.maxBlockMs,
        block.forgetAfterMs,
      );
    // Each distinct list of limits (one per rule) is sent once; groups refer to it by index.
    const sets = new Map<readonly LimitPolicy[], number>();
    const groupArgs: (string | number)[] = [];
    const setArgs: (string | number)[] = [];
    for (const { key, limits, costs } of requests) {
      let set = sets.get(limits);
      if (set === undefined) {
        set = sets.size + 1;
        sets.set(limits, set);
        setArgs.push(limits.length);
        for (const policy of limits)
          setArgs.push(
            algorithmCodes[policy.algorithm],
            policy.limit,
            policy.windowMs,
            capacityOf(policy),
            policy.queueMaxDelayMs ?? 0,
          );
      }
      const hashKey = `${this.#prefix}{${key}}`;
      keys.push(hashKey);
      // Sorted-set keys only for sliding logs; they share the hash tag, so the slot.
      let logs = false;
      for (const policy of limits) if (policy.algorithm === 'sliding-log') logs = true;
      if (logs)
        for (let index = 0; index < limits.length; index += 1) keys.push(`${hashKey}:log${index + 1}`);
      groupArgs.push(set, costs.length, logs ? 1 : 0);
      for (const cost of costs) groupArgs.push(cost);
    }
    args.push(sets.size, ...setArgs, ...groupArgs);
    const reply = await this.#run(keys, args);
    return parseReply(reply, requests);
  }

  async #run(keys: string[], args: (string | number)[]): Promise<unknown> {
    const waiting = this.#waitForFirstConnection();
    if (waiting !== undefined) await waiting;
    try {
      return await this.#client.evalsha(checkScriptSha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
      return this.#client.eval(checkScript, keys.length, ...keys, ...args);
    }
  }

  /**
   * With the offline queue off, commands sent before the very first connection fail at once;
   * a new client is not an outage, so wait for it (later disconnects fail fast instead).
   */
  #waitForFirstConnection(): Promise<void> | undefined {
    if (this.#everReady) return undefined;
    const client = this.#client as Redis;
    if (client.status === 'ready') {
      this.#everReady = true;
      return undefined;
    }
    if (this.#firstReady === undefined) {
      if (client.status === 'wait') client.connect().catch(() => {});
      this.#firstReady = new Promise<void>((resolve) =>
        client.once('ready', () => {
          this.#everReady = true;
          resolve();
        }),
      );
    }
    return this.#firstReady;
  }
}

function parseReply(reply: unknown, requests: readonly ConsumeRequest[]): ConsumeOutcome[][] {
  let expected = 0;
  for (const { limits, costs } of requests) expected += (1 + limits.length * 5) * costs.length;
  if (!Array.isArray(reply) || reply.length !== expected)
    throw new RateLimitStoreError('unexpected reply from the rate-limit script', { details: { reply } });
  const values = reply as number[];
  let at = 0;
  return requests.map(({ limits, costs }) => {
    const outcomes: ConsumeOutcome[] = new Array(costs.length);
    for (let index = 0; index < costs.length; index += 1) {
      const blockedMs = values[at]!;
      at += 1;
      const decisions: Decision[] = new Array(limits.length);
      for (let limit = 0; limit < limits.length; limit += 1) {
        const policy = limits[limit]!;
        decisions[limit] = {
          name: policy.name,
          windowMs: policy.windowMs,
          allowed: values[at] === 1,
          limit: capacityOf(policy),
          remaining: values[at + 1]!,
          resetMs: values[at + 2]!,
          retryAfterMs: values[at + 3]!,
          delayMs: values[at + 4]!,
        };
        at += 5;
      }
      outcomes[index] = { decisions, blockedMs };
    }
    return outcomes;
  });
}
