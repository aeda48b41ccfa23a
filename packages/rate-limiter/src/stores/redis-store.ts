import type { Socket } from 'node:net';
import { childLogger, parseOptions, pingRedis, silentLogger, TimeoutError, withDeadline } from '@noa/core';
import type { Cluster, Redis } from 'ioredis';
import { z } from 'zod';
import type { AutoBlockPolicy } from '../auto-block.js';
import type { Decision } from '../decision.js';
import { RateLimitStoreError } from '../errors.js';
import { loggerOptionSchema } from '../logger-option.js';
import { capacityOf, type LimitPolicy, maxLimitsPerRule } from '../policy.js';
import { isWellFormedText, utf16Digest, wellFormedHead } from '../utf16-key.js';
import { nextReady, watchSentinelClient } from './client-watches.js';
import { clusterSlot, hasEmptyHashTag, keyPrefixOf, wholeHashTagOf } from './cluster-slot.js';
import {
  algorithmCodes,
  checkProgram,
  checkScript,
  checkScriptSha,
  decisionFromReply,
  fifthPolicyValue,
  plainScript,
  policyValuesPerKey,
  replyValues,
  replyValuesPerLimit,
} from './lua-script.js';
import { warnIfEvicting } from './memory-policy.js';
import { adjustOnRedis } from './redis-adjust.js';
import { RedisClockOffset } from './redis-clock.js';
import { CheckFunctionLibrary, functionNotFound, outOfMemory, refusesFunctions } from './redis-functions.js';
import type {
  ConsumeOptions,
  ConsumeOutcome,
  ConsumeRequest,
  RateLimitStore,
  StoreAdjustment,
} from './store.js';
import { ClusterCommands, neverSent, slotsRefreshed, stampedExpiry } from './unsent-command.js';

/** Options of {@link RedisStore}. */
export const redisStoreOptionsSchema = z
  .object({
    /**
     * An ioredis client: `new Redis(…)` or `new Cluster(…)` (see `recommendedRedisOptions` and
     * `recommendedClusterOptions`).
     */
    client: z.custom<Redis | Cluster>(
      (value) => typeof (value as Redis)?.evalsha === 'function',
      'an ioredis Redis or Cluster instance',
    ),
    /**
     * Prefix of every key; the key itself is wrapped in `{…}` so all of its state shares a Cluster
     * slot. A prefix with an empty hash tag (`{}`) is refused: Redis Cluster would hash each key
     * whole, so a key's state would span slots (CROSSSLOT).
     */
    prefix: z
      .string()
      .refine(
        isWellFormedText,
        'must be well-formed Unicode (Redis writes a lone surrogate as U+FFFD: prefixes that differ only there would share their keys)',
      )
      .refine(
        (prefix) => !hasEmptyHashTag(prefix),
        'must not hold an empty hash tag "{}" before any other "{": Redis Cluster would then hash each key whole, and a key\'s state (its hash and sliding-log sets) would span slots (CROSSSLOT)',
      )
      .default('noa:rl:'),
    /**
     * Run checks as a Redis function (`FCALL`, Redis ≥ 7; the store loads its library on first
     * use, and again after a `FUNCTION FLUSH` or a restart that lost it), which costs the server
     * about a third less per one-key check than a script. `false`, or a server that refuses
     * functions (Redis < 7, an ACL without `FUNCTION LOAD` or `FCALL`): scripts (`EVALSHA`).
     */
    functions: z.boolean().default(true),
    /**
     * After a server refused functions, how long checks run as scripts before the store tries a
     * function again (ms, default 5 min; 0: never): a Redis upgraded to 7, an ACL that now
     * allows `FCALL`, or a library whose load failed for want of memory get functions back
     * without a restart. A try is one call sent as `FCALL` while the others stay scripts: on a
     * server that still refuses, it costs that one call a second round trip, once per period.
     */
    functionsRetryMs: z.number().int().nonnegative().default(300_000),
    /**
     * Logger for configuration warnings (among them a Redis that may evict the limiter's keys:
     * read once from `INFO memory` when the client is ready) and the switch from functions to
     * scripts.
     */
    logger: loggerOptionSchema.optional(),
  })
  .strict()
  .superRefine((value, context) => {
    // ioredis puts its keyPrefix in front of every key: an empty tag there (or one the prefix
    // completes, `a{` + `}b:`) makes Redis Cluster hash each key whole, as one in the prefix does.
    const keyPrefix = value.client === undefined ? '' : keyPrefixOf(value.client);
    if (keyPrefix === '' || hasEmptyHashTag(value.prefix)) return;
    if (hasEmptyHashTag(keyPrefix + value.prefix))
      context.addIssue({
        code: 'custom',
        path: ['client'],
        message: `the client's keyPrefix ${JSON.stringify(keyPrefix)} followed by the prefix ${JSON.stringify(value.prefix)} holds an empty hash tag "{}" before any other "{": Redis Cluster would hash each key whole, and a key's state would span slots (CROSSSLOT)`,
      });
  });

/** Options of {@link RedisStore} as written by users. */
export type RedisStoreOptions = z.input<typeof redisStoreOptionsSchema>;

/** How long a record of namespaces (or its reading) waits for the client's first connection. */
const recordConnectWaitMs = 5_000;

/** The script that writes a rule's record of its namespaces (see `recordNamespace`). */
const recordScript = plainScript('record-namespace.lua');

/** The script that deletes a key's state unless its caller gave up (see `reset`). */
const resetScript = plainScript('reset.lua');

/** Keys `resetAll` asks `SCAN` to look at per call (and so, at most, to delete per `UNLINK`). */
const scanCount = 1_000;

/** `text` matched literally by a Redis glob pattern (`*`, `?`, `[`, `]` and `\` escaped). */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/** Most keys one script call carries: small enough that several calls overlap (Redis works on one
 * while the client prepares the next), large enough to amortise the call. */
const maxGroupsPerCall = 32;

/** Most times a Cluster call refused before reaching any server is sent again (see `#untilSent`). */
const maxResends = 3;

/**
 * ioredis options that keep a check from waiting on a dead Redis: fail at once while
 * disconnected instead of queueing, and do not retry a command. The limiter's deadline bounds
 * the rest (a connected but stalled server). `failoverDetector` matters only to a Sentinel client
 * (`new Redis({ sentinels, name, ...recommendedRedisOptions })`): it listens for the sentinels'
 * `+switch-master` and leaves the old master at once. Without it, after a `SENTINEL FAILOVER`
 * the client stays on the old master until the sentinels demote it (about 10 s, their `INFO`
 * period), and every count taken there meanwhile is lost with the old master's data.
 */
export const recommendedRedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  connectTimeout: 2_000,
  failoverDetector: true,
} as const;

/** One script call: the requests it decides, its keys, and its arguments (`args[0]`: expiry). */
interface ScriptCall {
  readonly requests: readonly ConsumeRequest[];
  readonly keys: string[];
  readonly args: (string | number)[];
  /** Cluster: the slot of the call's keys (they share one), once computed. */
  slot: number | undefined;
  /** Cluster batch of calls with shared slots: which of the batch's requests the call decides. */
  indices: number[] | undefined;
  /** When its caller gives up (local ms), as last stamped; none: no expiry. */
  giveUpAtMs: number | undefined;
  /** Cluster: the node a MOVED or ASK sent its last send to (its clock read the reply). */
  ranOn: string | undefined;
}

/**
 * ioredis `Cluster` options to the same end as {@link recommendedRedisOptions}: while the cluster
 * is not ready, or a master's connection is gone, a command fails at once instead of queueing
 * (nodes connect lazily, so their own offline queue stays on for the first connection).
 * `enableAutoPipelining` stays off: the store already sends a tick's calls in one write per
 * master (its connections corked while it sends them), and an auto-pipeline that mixes a
 * redirected call with calls that succeeded hands the MOVED error to its caller instead of
 * following it. `retryDelayOnFailover: 0`: a command whose connection closed before its reply
 * (its master killed or failed over) may have run, so it is not sent again (ioredis's default
 * resends it after 100 ms): a check would count twice, and a refund give its points back twice,
 * admitting more than the limit. The command fails instead and the fail mode answers it.
 * Redirections (MOVED, ASK) and refusals (TRYAGAIN, CLUSTERDOWN) ran nothing and are still
 * followed, and the store itself sends again a call ioredis refused before writing it (a new
 * master still connecting after a failover).
 */
export const recommendedClusterOptions = {
  enableOfflineQueue: false,
  enableAutoPipelining: false,
  retryDelayOnFailover: 0,
  redisOptions: { maxRetriesPerRequest: 0, connectTimeout: 2_000 },
} as const;

/** When the caller of one script call gives up, on the local monotonic clock. */
interface GiveUp {
  atMs: number;
  deadlineMs: number;
}

/**
 * Redis store (standalone or Cluster): one Lua script (EVALSHA, falling back to EVAL on
 * NOSCRIPT) per check or per batch of checks of one key, atomic over all the key's limits,
 * timed by Redis `TIME` so that app servers' clocks do not matter. A call made with a deadline
 * carries it in Redis time, so a call that reaches Redis after its caller gave up (queued behind
 * a pause or a slow script) counts nothing.
 */
export class RedisStore implements RateLimitStore {
  readonly kind = 'redis';
  readonly remote = true;
  readonly #client: Redis | Cluster;
  readonly #prefix: string;
  /**
   * The client's ioredis `keyPrefix` ('' for none), in front of every key on the server: a
   * Cluster slot is the prefixed key's (a tag in it, `{tenant}:`, decides the slot), as ioredis
   * routes it.
   */
  readonly #keyPrefix: string;
  /** The client and key prefix: stores on one client with one prefix share their keys. */
  readonly stateScope: { readonly owner: object; readonly prefix: string };
  /**
   * Until the client's first `ready`, calls wait for it, each until its caller gives up: the
   * wake-ups of the calls still waiting (a call leaves at its deadline, so that neither it nor
   * its requests are held for a connection that may take minutes).
   */
  readonly #readyWaiters = new Set<() => void>();
  #listeningForReady = false;
  #everReady = false;
  /** Standalone: the one server's clock offset. */
  readonly #clock = new RedisClockOffset();
  /**
   * Cluster: one clock offset per node (`host:port`), since each server has its own clock. Only
   * nodes of the client's pool stay (see {@link #clockOfNode}).
   */
  readonly #nodeClocks = new Map<string, RedisClockOffset>();
  /** Cluster: the `TIME` asked of each master whose clock a resend needs (see {@link #learnClock}). */
  readonly #clockLearning = new Map<string, Promise<void>>();
  /** The check program as a Redis function library on this client's servers. */
  readonly #library: CheckFunctionLibrary;
  /**
   * Per server (`''` for a standalone client, a Cluster master's `host:port`), the EVAL in flight
   * that loads the check script there after a NOSCRIPT (see {@link #evalLoading}).
   */
  readonly #scriptLoads = new Map<string, Promise<void>>();

  constructor(options: RedisStoreOptions) {
    const parsed = parseOptions('RedisStore', redisStoreOptionsSchema, options);
    this.#client = parsed.client;
    this.#prefix = parsed.prefix;
    this.#keyPrefix = keyPrefixOf(parsed.client);
    this.stateScope = { owner: parsed.client, prefix: parsed.prefix };
    const clientOptions = (parsed.client as Redis).options as
      | {
          enableOfflineQueue?: boolean;
          enableAutoPipelining?: boolean;
          retryDelayOnFailover?: number;
          sentinels?: unknown[];
          failoverDetector?: boolean;
        }
      | undefined;
    const isCluster = (parsed.client as Cluster).isCluster === true;
    this.#isCluster = isCluster;
    if (isCluster) this.#commands = ClusterCommands.of(parsed.client as Cluster);
    this.#mastersReady = !isCluster || clientOptions?.enableOfflineQueue !== false;
    if (isCluster) this.consumeEach = this.#consumeEachOnCluster;
    else {
      this.consumeEach = this.#consumeEachInChunks;
      this.keysPerCall = maxGroupsPerCall;
    }
    const recommended = isCluster ? 'recommendedClusterOptions' : 'recommendedRedisOptions';
    // The application's logger: a throw of its own must not fail the store (childLogger drops it).
    const logger = childLogger(parsed.logger ?? silentLogger, { component: 'rate-limiter' });
    this.#library = new CheckFunctionLibrary(
      parsed.client,
      logger,
      parsed.functions,
      parsed.functionsRetryMs,
    );
    // Only for a store given a logger: the warning is all it is for.
    if (parsed.logger !== undefined) warnIfEvicting(parsed.client, logger);
    if (clientOptions?.enableOfflineQueue !== false)
      logger.warn(`RedisStore: the ioredis client queues commands while disconnected; use ${recommended}`, {
        component: 'rate-limiter',
      });
    if (isCluster && (clientOptions?.retryDelayOnFailover ?? 0) > 0)
      logger.warn(
        'RedisStore: retryDelayOnFailover > 0 resends a check or refund whose master went away after running it (counted twice, or refunded twice); use recommendedClusterOptions',
        { component: 'rate-limiter' },
      );
    if (!isCluster && (clientOptions?.sentinels?.length ?? 0) > 0 && clientOptions?.failoverDetector !== true)
      logger.warn(
        'RedisStore: a Sentinel client without failoverDetector stays on the old master about 10 s after a SENTINEL FAILOVER, and the counts it takes there are lost; use recommendedRedisOptions (failoverDetector: true)',
        { component: 'rate-limiter' },
      );
    // With the failover detector, ioredis can end a Sentinel client for good in a failover (the
    // switch announced while the client, its master dead, looks up the new one): reconnected.
    // One watch per client, shared by its stores (see client-watches.ts).
    if (!isCluster)
      this.#stopReviving = watchSentinelClient(parsed.client as Redis, this, () =>
        logger.warn(
          'RedisStore: ioredis ended this Sentinel client in a failover (the switch was announced while it looked up the master); reconnecting it',
          { component: 'rate-limiter' },
        ),
      );
    // As ioredis and BullMQ tell their users: a tag in front of the store's own `{<key>}` is the
    // one Redis hashes. It works (one slot, so one master) but the limiter's load stops spreading.
    const prefixTag = isCluster ? wholeHashTagOf(this.#keyPrefix + parsed.prefix) : undefined;
    if (prefixTag !== undefined)
      logger.warn(
        `RedisStore: the prefix (with the client's keyPrefix) holds the hash tag ${JSON.stringify(prefixTag)}, so every key of this store is in one slot, on one master of the Cluster; drop the braces to spread the keys over the masters`,
        { component: 'rate-limiter' },
      );
    if (isCluster && clientOptions?.enableAutoPipelining === true)
      logger.warn(
        'RedisStore: enableAutoPipelining on a Cluster fails checks with MOVED/ASK while slots move; use recommendedClusterOptions',
        { component: 'rate-limiter' },
      );
  }

  readonly #isCluster: boolean;
  /**
   * Cluster: sends calls so that one refused before it reached any server (its master still
   * connecting after a failover) is known to be safe to send again (see src/stores/unsent-command.ts).
   */
  readonly #commands: ClusterCommands | undefined;
  /**
   * True once every Cluster master was seen connected, or from the start when there is nothing
   * to wait for (standalone, or a Cluster whose offline queue holds commands while connecting).
   */
  #mastersReady: boolean;

  /**
   * {@link consumeMany} with one promise per request, each settled by its own script call: on a
   * Cluster, while a master is down or stalled, the requests of the other masters are answered as
   * soon as their own calls are; on a standalone Redis, a batch of more than
   * {@link maxGroupsPerCall} keys goes as several calls, and a call that fails or reaches Redis
   * after its deadline fails only its own keys (the others' calls were counted: they get their
   * outcomes, not a failure).
   */
  readonly consumeEach: (
    requests: readonly ConsumeRequest[],
    block: AutoBlockPolicy | undefined,
    options?: ConsumeOptions,
  ) => Promise<ConsumeOutcome[]>[];

  /**
   * Standalone Redis: keys per script call ({@link maxGroupsPerCall}); a caller's batch of at most
   * this many is one call, answered or failed as a whole. Undefined on a Cluster (a call per key
   * or per slot).
   */
  readonly keysPerCall: number | undefined;

  /** One script call for `costs` consecutive requests of `key` over all its limits. */
  consume(
    key: string,
    limits: readonly LimitPolicy[],
    costs: readonly number[],
    block: AutoBlockPolicy | undefined,
    options?: ConsumeOptions,
  ): Promise<ConsumeOutcome[]> {
    return this.#runGroups([{ key, limits, costs }], block, giveUpOf(options)).then(
      (outcomes) => outcomes[0]!,
    );
  }

  /**
   * Standalone Redis: up to {@link maxGroupsPerCall} keys per script call (a few calls, sent
   * together, for a whole tick of checks); it rejects when any call fails, though the others
   * counted: {@link consumeEach} answers each key by its own call. Cluster: keys that share a slot share calls the same
   * way (a script's keys must share a slot), each call its own command, and the calls bound for
   * one master leave in one write (see {@link #sendCorked}).
   */
  async consumeMany(
    requests: readonly ConsumeRequest[],
    block: AutoBlockPolicy | undefined,
    options?: ConsumeOptions,
  ): Promise<ConsumeOutcome[][]> {
    const giveUp = giveUpOf(options);
    if (requests.length === 1) return this.#runGroups(requests, block, giveUp);
    if (this.#isCluster) return Promise.all(this.consumeEach(requests, block, options));
    const chunks: Promise<ConsumeOutcome[][]>[] = [];
    for (let start = 0; start < requests.length; start += maxGroupsPerCall)
      chunks.push(this.#runGroups(requests.slice(start, start + maxGroupsPerCall), block, giveUp));
    return (await Promise.all(chunks)).flat();
  }

  /**
   * Deletes the key's hash and sliding-log sets; true when DEL found any (an expired key is gone).
   * With `options.deadlineMs` the call carries its deadline in Redis time, as checks and
   * adjustments do: one that reaches Redis after it (queued behind a pause) deletes nothing and
   * rejects with core's `TimeoutError`.
   */
  async reset(key: string, options?: ConsumeOptions): Promise<boolean> {
    const giveUp = giveUpOf(options);
    const hashKey = this.#hashKey(key);
    // Without a deadline (a direct call) a connection that never comes must not hold it for good:
    // the command is sent as it is, and a client that is not connected refuses it at once.
    if (giveUp !== undefined) await this.#whenKeyReady(hashKey, giveUp);
    // The log keys of the most limits a rule has; every key shares the hash tag, so one DEL suffices.
    const keys = [hashKey];
    for (let index = 1; index <= maxLimitsPerRule; index += 1) keys.push(`${hashKey}:log${index}`);
    const clock = this.#clockOf(hashKey);
    const expiry = giveUp === undefined ? 0 : (clock?.expiryFor(giveUp.atMs) ?? 0);
    const sentAt = performance.now();
    let reply: unknown;
    try {
      reply = await this.#client.evalsha(resetScript.sha, keys.length, ...keys, expiry);
    } catch (error) {
      if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
      reply = await this.#client.eval(resetScript.source, keys.length, ...keys, expiry);
    }
    const receivedAt = performance.now();
    const [redisNow, deleted] = checkedReply(reply);
    if (deleted !== -1) {
      clock?.observe(sentAt, redisNow!, receivedAt);
      return deleted! > 0;
    }
    clock?.observeExpired(sentAt, redisNow!, receivedAt, giveUp?.atMs ?? Number.NEGATIVE_INFINITY);
    throw new TimeoutError(
      'rate-limit reset on redis (skipped: it reached Redis after its deadline)',
      giveUp?.deadlineMs ?? 0,
    );
  }

  /**
   * Deletes the state of every key whose limiter key starts with one of `namespaces` (a limiter's
   * rules, see {@link RateLimitStore.resetAll}), or of every key under this store's `prefix` when
   * `namespaces` is undefined: `SCAN … MATCH <prefix>{<namespace>*` (with the client's ioredis
   * `keyPrefix` in front) on the server, or on every master of a Cluster, and `UNLINK` of each
   * page of keys found (on a Cluster, per hash slot: a key's hash and its logs share one). Not
   * atomic: a check that lands during it may count in a key already deleted. A key that is not
   * well-formed Unicode (a lone surrogate) is stored under its digest after its namespace (see
   * `#hashKey`): it is found too.
   */
  async resetAll(namespaces?: readonly string[]): Promise<void> {
    const client = this.#client;
    const keyPrefix = (client.options as { keyPrefix?: string } | undefined)?.keyPrefix ?? '';
    const patterns = (namespaces ?? [undefined]).map(
      (namespace) =>
        `${escapeGlob(`${keyPrefix}${this.#prefix}${namespace === undefined ? '' : `{${namespace}`}`)}*`,
    );
    let servers: (Redis | Cluster)[] = [client];
    if (this.#isCluster) {
      const cluster = client as Cluster;
      // A Cluster not connected yet knows no masters: one command waits for it (or fails).
      if (cluster.nodes('master').length === 0) await cluster.ping();
      servers = cluster.nodes('master');
    }
    const unlink = async (found: string[]): Promise<void> => {
      // Sent through the client, which puts its keyPrefix back in front (and routes by slot).
      const keys = found.map((key) => key.slice(keyPrefix.length));
      if (!this.#isCluster) {
        await client.unlink(...keys);
        return;
      }
      const bySlot = new Map<number, string[]>();
      for (let index = 0; index < keys.length; index += 1) {
        const slot = clusterSlot(found[index]!);
        const group = bySlot.get(slot);
        if (group === undefined) bySlot.set(slot, [keys[index]!]);
        else group.push(keys[index]!);
      }
      await Promise.all([...bySlot.values()].map((group) => client.unlink(...group)));
    };
    await Promise.all(
      servers.flatMap((server) =>
        patterns.map(async (pattern) => {
          let cursor = '0';
          do {
            const [next, found] = await (server as Redis).scan(cursor, 'MATCH', pattern, 'COUNT', scanCount);
            cursor = next;
            if (found.length > 0) await unlink(found);
          } while (cursor !== '0');
        }),
      ),
    );
  }

  /**
   * Records `namespace` for `rule` in the sorted set `<prefix>{<rule>}:namespaces` (one key, so one
   * slot of a Cluster), scored by the time its keys may live until: raised to `ttlMs` from now,
   * never lowered; expired namespaces are dropped, and the set lives as long as its longest-lived
   * one. "Now" is the Redis server's `TIME`, read by the script that writes the record: app servers
   * whose clocks disagree would otherwise drop each other's live records (one running ahead) or
   * write records that expire at once (one running behind). Waits up to 5 s for the client's first
   * connection, as checks wait up to their deadline.
   */
  async recordNamespace(rule: string, namespace: string, ttlMs: number): Promise<void> {
    const recordKey = this.#recordKey(rule);
    await this.#whenKeyReady(recordKey, giveUpOf({ deadlineMs: recordConnectWaitMs }));
    const args = [namespace, Math.max(1, Math.ceil(ttlMs))];
    try {
      await this.#client.evalsha(recordScript.sha, 1, recordKey, ...args);
    } catch (error) {
      if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
      await this.#client.eval(recordScript.source, 1, recordKey, ...args);
    }
  }

  /**
   * The namespaces recorded for `rule` (see {@link recordNamespace}); one that expired but was not
   * dropped yet may be among them (its keys have expired: a scan for them finds none).
   */
  async recordedNamespaces(rule: string): Promise<string[]> {
    const recordKey = this.#recordKey(rule);
    await this.#whenKeyReady(recordKey, giveUpOf({ deadlineMs: recordConnectWaitMs }));
    return this.#client.zrange(recordKey, 0, -1);
  }

  /**
   * A rule's record: after `}`, so no state key (`<prefix>{<key>}`, its logs `…}:log<n>`) and no
   * rule's scan pattern (`<prefix>{<namespace>*`, whose namespace has a fingerprint after the rule)
   * meets it.
   */
  #recordKey(rule: string): string {
    return `${this.#prefix}{${rule}}:namespaces`;
  }

  /**
   * PINGs what serves the store: the node (a Sentinel client's current master) or every master
   * a Cluster client knows (@noa/core's `pingRedis`); a connection that is down rejects at once.
   */
  ping(): Promise<void> {
    return pingRedis(this.#client);
  }

  /**
   * The breaker's probe on a Cluster: one PING to every master, resolved once any of them answered
   * (@noa/core's `pingRedis` with `masters: 'any'`); on a single node, {@link ping}.
   */
  pingAnyPart(): Promise<void> {
    return pingRedis(this.#client, { masters: 'any' });
  }

  /** The client belongs to the caller, who closes it; the store stops watching it. */
  async close(): Promise<void> {
    this.#stopReviving?.();
  }

  /** Releases this store's share of its Sentinel client's revival watch, at close. */
  #stopReviving: (() => void) | undefined;

  async #runGroups(
    requests: readonly ConsumeRequest[],
    block: AutoBlockPolicy | undefined,
    giveUp: GiveUp | undefined,
  ): Promise<ConsumeOutcome[][]> {
    const call = this.#scriptCall(requests, block);
    const waiting = this.#waitForFirstConnection(giveUp);
    if (waiting !== undefined) await waiting;
    if (this.#mastersReady) return this.#untilSent(call, giveUp, () => this.#send(call, giveUp));
    return this.#whenMasterReady(call, giveUp, () =>
      this.#untilSent(call, giveUp, () => this.#send(call, giveUp)),
    );
  }

  /**
   * `send()`, and on a Cluster `send()` again when it failed before reaching any server (ioredis
   * refused it for a master still connecting, as a graceful failover's new master is): after that
   * master connected or the slot map was refreshed, while its caller still waits, at most
   * {@link maxResends} times. A call that may have been written is never sent again (it may have
   * counted).
   */
  #untilSent<T>(
    call: ScriptCall,
    giveUp: GiveUp | undefined,
    send: () => Promise<T>,
    resends = 0,
  ): Promise<T> {
    if (this.#commands === undefined) return send();
    return send().catch((error: unknown) => {
      if (!neverSent(error) || resends >= maxResends) throw error;
      return this.#beforeResend(call.slot ?? this.#slotOf(call.keys[0]!), giveUp, error).then(() =>
        this.#untilSent(call, giveUp, send, resends + 1),
      );
    });
  }

  /**
   * Resolves when a call of `slot` that was refused unsent may be sent again: the slot's master is
   * connected (or its connection failed), or the slot map was refreshed, and its clock is known.
   * Rejects with `error` when the client has ended or that clock cannot be learnt, with core's
   * `TimeoutError` once the caller has given up.
   */
  async #beforeResend(slot: number, giveUp: GiveUp | undefined, error: unknown): Promise<void> {
    const client = this.#client as Cluster;
    if (client.status === 'end' || client.status === 'close' || client.status === 'disconnecting')
      throw error;
    const master = this.#servingNode(slot);
    if (master !== undefined && master.status !== 'ready') await connected([master], giveUp);
    else await slotsRefreshed(client);
    if (giveUp !== undefined) await this.#learnClock(slot, giveUp, error);
    if (giveUp !== undefined && performance.now() >= giveUp.atMs)
      throw new TimeoutError(
        'rate-limit call on redis (not sent again: its caller gave up meanwhile)',
        giveUp.deadlineMs,
      );
  }

  /**
   * Before a resend with a deadline: the clock offset of the master that now serves `slot`, from
   * its `TIME` when the store has not heard from it (a replica a failover promoted), so that the
   * call carries its expiry in that master's clock (see `stampedExpiry`). One `TIME` per master,
   * however many calls wait for it. Rejects with `error` (the call is not sent again) when the
   * master does not tell its time before the caller gives up.
   */
  async #learnClock(slot: number, giveUp: GiveUp, error: unknown): Promise<void> {
    const client = this.#client as Cluster;
    // A slot map that names a node gone (a MOVED to it, the refresh not back yet) would send the
    // call to any master, to be redirected: where it runs, hence its clock, is not known yet.
    let master = this.#servingNode(slot);
    while (master === undefined && performance.now() < giveUp.atMs) {
      await slotsRefreshed(client);
      master = this.#servingNode(slot);
    }
    // Past the give-up, the caller's `TimeoutError` follows instead.
    if (master === undefined) return;
    const serving = client.slots[slot]![0]!;
    const clock = this.#clockOfSlot(slot)!;
    if (clock.expiryFor(giveUp.atMs) !== undefined) return;
    let learning = this.#clockLearning.get(serving);
    if (learning === undefined) {
      const sentAt = performance.now();
      learning = master
        .time()
        .then(
          ([seconds, micros]) =>
            // As the scripts read it: whole ms, rounded down.
            clock.observe(
              sentAt,
              Number(seconds) * 1_000 + Math.floor(Number(micros) / 1_000),
              performance.now(),
            ),
          () => {},
        )
        .finally(() => this.#clockLearning.delete(serving));
      this.#clockLearning.set(serving, learning);
    }
    const leftMs = giveUp.atMs - performance.now();
    // Bounded by the caller's give-up; a TIME that does not come back in time leaves the clock unknown.
    if (leftMs > 0) await withDeadline(learning, leftMs, 'redis TIME').catch(() => {});
    if (clock.expiryFor(giveUp.atMs) === undefined && performance.now() < giveUp.atMs) throw error;
  }

  /** The connection of the node the slot map names for `slot`, unless there is none or it has ended. */
  #servingNode(slot: number): Redis | undefined {
    const client = this.#client as Cluster;
    const serving = client.slots[slot]?.[0];
    if (serving === undefined) return undefined;
    const node = client.nodes('all').find((node) => `${node.options.host}:${node.options.port}` === serving);
    return node?.status === 'end' ? undefined : node;
  }

  /**
   * Standalone: {@link consumeMany}'s calls of up to {@link maxGroupsPerCall} keys, each request
   * answered by its own call.
   */
  readonly #consumeEachInChunks = (
    requests: readonly ConsumeRequest[],
    block: AutoBlockPolicy | undefined,
    options?: ConsumeOptions,
  ): Promise<ConsumeOutcome[]>[] => {
    const giveUp = giveUpOf(options);
    const answers: Promise<ConsumeOutcome[]>[] = new Array(requests.length);
    for (let start = 0; start < requests.length; start += maxGroupsPerCall) {
      const chunk = this.#runGroups(requests.slice(start, start + maxGroupsPerCall), block, giveUp);
      const end = Math.min(requests.length, start + maxGroupsPerCall);
      for (let index = start; index < end; index += 1)
        answers[index] = chunk.then((all) => all[index - start]!);
    }
    return answers;
  };

  /**
   * Cluster: one script call per key, or per slot's chunk of requests when keys share a slot
   * (hash tags), each sent as its own command while the masters' connections are corked, so
   * that a batch still leaves in one write per master. Its own command, not a pipeline's, so
   * ioredis follows MOVED/ASK (and retries TRYAGAIN/CLUSTERDOWN) for it alone, and each
   * request is answered as soon as its own master replies.
   */
  readonly #consumeEachOnCluster = (
    requests: readonly ConsumeRequest[],
    block: AutoBlockPolicy | undefined,
    options?: ConsumeOptions,
  ): Promise<ConsumeOutcome[]>[] => {
    const giveUp = giveUpOf(options);
    const calls = this.#clusterCalls(requests, block);
    // Without indices, the calls are the requests, one each, in order.
    const sendAll =
      calls[0]?.indices === undefined
        ? () =>
            this.#sendCorked(calls, (call) =>
              this.#mastersReady
                ? this.#untilSent(call, giveUp, () => this.#sendOnly(call, giveUp))
                : this.#whenMasterReady(call, giveUp, () =>
                    this.#untilSent(call, giveUp, () => this.#sendOnly(call, giveUp)),
                  ),
            )
        : () =>
            perRequest(
              requests.length,
              calls,
              this.#sendCorked(calls, (call) =>
                this.#mastersReady
                  ? this.#untilSent(call, giveUp, () => this.#send(call, giveUp))
                  : this.#whenMasterReady(call, giveUp, () =>
                      this.#untilSent(call, giveUp, () => this.#send(call, giveUp)),
                    ),
              ),
            );
    // Before the first connection, everything waits for it, until the caller's deadline.
    const waiting = this.#waitForFirstConnection(giveUp);
    if (waiting === undefined) return sendAll();
    const later = waiting.then(sendAll);
    return requests.map((_, index) => later.then((sent) => sent[index]!));
  };

  /**
   * A batch's calls on a Cluster: one per request, in order and without `indices`, when no two
   * keys share a slot (the common case with random keys); else the keys of one slot share calls
   * of up to {@link maxGroupsPerCall} keys, as on a standalone Redis, each with its `indices`.
   */
  #clusterCalls(requests: readonly ConsumeRequest[], block: AutoBlockPolicy | undefined): ScriptCall[] {
    const calls: ScriptCall[] = new Array(requests.length);
    const slots = new Set<number>();
    let shared = false;
    for (let index = 0; index < requests.length && !shared; index += 1) {
      const request = requests[index]!;
      const hashKey = this.#hashKey(request.key);
      const slot = this.#slotOf(hashKey);
      if (slots.has(slot)) shared = true;
      slots.add(slot);
      calls[index] = this.#oneKeyCall(request, hashKey, block) ?? this.#scriptCall([request], block);
      calls[index]!.slot = slot;
    }
    if (!shared) return calls;
    const bySlot = new Map<number, number[]>();
    for (let index = 0; index < requests.length; index += 1) {
      const slot = this.#slotOf(this.#hashKey(requests[index]!.key));
      const members = bySlot.get(slot);
      if (members === undefined) bySlot.set(slot, [index]);
      else members.push(index);
    }
    const grouped: ScriptCall[] = [];
    for (const [slot, members] of bySlot)
      for (let start = 0; start < members.length; start += maxGroupsPerCall) {
        const indices = members.slice(start, start + maxGroupsPerCall);
        const call = this.#scriptCall(
          indices.map((index) => requests[index]!),
          block,
        );
        call.slot = slot;
        call.indices = indices;
        grouped.push(call);
      }
    return grouped;
  }

  /**
   * Sends `calls` one command each, with every master's connection corked meanwhile: the
   * commands bound for one master leave in one write (one system call each side) instead of one
   * per command, what a pipeline gives without its per-batch grouping and reply bookkeeping.
   */
  #sendCorked<T>(calls: readonly ScriptCall[], send: (call: ScriptCall) => Promise<T>): Promise<T>[] {
    if (calls.length === 1) return [send(calls[0]!)];
    // The sockets themselves are kept: a connection replaced meanwhile still gets its uncork.
    const corked: Socket[] = [];
    for (const master of (this.#client as Cluster).nodes('master'))
      if (master.stream !== undefined) {
        master.stream.cork();
        corked.push(master.stream);
      }
    try {
      const sent: Promise<T>[] = new Array(calls.length);
      for (let index = 0; index < calls.length; index += 1) sent[index] = send(calls[index]!);
      return sent;
    } finally {
      for (const stream of corked) stream.uncork();
    }
  }

  /**
   * True while checks run as a Redis function (FCALL); false once the server refused functions
   * (or `functions: false`) and they run as scripts (EVALSHA), until a retry's FCALL succeeds.
   */
  get usesFunctions(): boolean {
    return this.#library.enabled;
  }

  /** The Cluster slot of a key of this store, as ioredis routes it (with the client's keyPrefix). */
  #slotOf(key: string): number {
    return clusterSlot(this.#keyPrefix === '' ? key : this.#keyPrefix + key);
  }

  /**
   * `prefix{key}`: the key's state hash; every key of its state shares the tag, hence the slot.
   * A key that is not well-formed Unicode (a lone surrogate) is named by its UTF-16 digest,
   * `prefix{<head>#utf16:<digest>}`: Redis would write its lone surrogates as U+FFFD, and
   * `"\ud800"` and `"\udbff"` would share one state. `<head>` is the key up to the last `:` before
   * its first lone surrogate (the limiter's namespace, `<prefix>:<rule>:<fingerprint>:`, at
   * least), so that `resetAll` finds the key under its namespace.
   */
  #hashKey(key: string): string {
    return `${this.#prefix}{${isWellFormedText(key) ? key : `${wellFormedHead(key)}#utf16:${utf16Digest(key)}`}}`;
  }

  /**
   * The call of one key with one scalar limit, one cost and no auto-block: the script's one-key
   * path (every call on a Cluster, where keys rarely share a slot) in its short form (check.lua's
   * `entry`): expiry, the limit's five values, the cost; 7 arguments where the batch form takes
   * 13, since ioredis spends about 0.1 µs per argument writing a command (and Redis some parsing
   * it). `undefined` for any other request.
   */
  #oneKeyCall(
    request: ConsumeRequest,
    hashKey: string,
    block: AutoBlockPolicy | undefined,
  ): ScriptCall | undefined {
    const { limits, costs } = request;
    const policy = limits[0];
    if (
      block !== undefined ||
      limits.length !== 1 ||
      costs.length !== 1 ||
      policy!.algorithm === 'sliding-log'
    )
      return undefined;
    return {
      requests: [request],
      keys: [hashKey],
      args: [
        0,
        algorithmCodes[policy!.algorithm],
        policy!.limit,
        policy!.windowMs,
        capacityOf(policy!),
        fifthPolicyValue(policy!, request.key),
        costs[0]!,
      ],
      slot: undefined,
      indices: undefined,
      giveUpAtMs: undefined,
      ranOn: undefined,
    };
  }

  /** The keys and arguments of one script call (its expiry is stamped when it is sent). */
  #scriptCall(requests: readonly ConsumeRequest[], block: AutoBlockPolicy | undefined): ScriptCall {
    if (requests.length === 1) {
      const oneKey = this.#oneKeyCall(requests[0]!, this.#hashKey(requests[0]!.key), block);
      if (oneKey !== undefined) return oneKey;
    }
    const keys: string[] = [];
    const args: (string | number)[] = [0, requests.length];
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
    // Commonly every key has one cost: its count is then left out (less for Redis to parse).
    let oneCostEach = true;
    for (const { costs } of requests) if (costs.length !== 1) oneCostEach = false;
    for (const { key, limits, costs } of requests) {
      // A limit with an offset per key ('key') is sent with this key's offset: a set of its own
      // (under a copy of the list, which no other key finds).
      const perKey = policyValuesPerKey(limits);
      let set = perKey ? undefined : sets.get(limits);
      if (set === undefined) {
        set = sets.size + 1;
        sets.set(perKey ? [...limits] : limits, set);
        setArgs.push(limits.length);
        for (const policy of limits)
          setArgs.push(
            algorithmCodes[policy.algorithm],
            policy.limit,
            policy.windowMs,
            capacityOf(policy),
            fifthPolicyValue(policy, key),
          );
      }
      const hashKey = this.#hashKey(key);
      keys.push(hashKey);
      // Sorted-set keys only for sliding logs; they share the hash tag, so the slot.
      let logs = false;
      for (const policy of limits) if (policy.algorithm === 'sliding-log') logs = true;
      if (logs)
        for (let index = 0; index < limits.length; index += 1) keys.push(`${hashKey}:log${index + 1}`);
      groupArgs.push(set);
      if (!oneCostEach) groupArgs.push(costs.length);
      for (const cost of costs) groupArgs.push(cost);
    }
    args.push(sets.size, ...setArgs, oneCostEach ? 1 : 0, ...groupArgs);
    return {
      requests,
      keys,
      args,
      slot: undefined,
      indices: undefined,
      giveUpAtMs: undefined,
      ranOn: undefined,
    };
  }

  /** Sets the call's expiry from its caller's give-up time, in the Redis time of its server. */
  #stampExpiry(call: ScriptCall, giveUp: GiveUp | undefined): void {
    call.ranOn = undefined;
    // Every key of one call shares a slot, hence a server and its clock.
    if (giveUp !== undefined) {
      call.giveUpAtMs = giveUp.atMs;
      call.args[0] = stampedExpiry(call.args[0] as number, this.#clockOfCall(call), giveUp.atMs);
    }
  }

  /**
   * The expiry of `call` once ioredis follows a MOVED or ASK reply to `node` (Cluster): in that
   * node's clock (none when the store has not heard from it, as for a first call), not the one it
   * was stamped for. A slot moved by resharding, or asked of its importing node, runs on a master
   * whose clock may differ from the first one's by the hosts' skew.
   */
  #redirected(call: ScriptCall, node: string): number {
    call.ranOn = this.#nodeKeyOf(node);
    return stampedExpiry(call.args[0] as number, this.#nodeClocks.get(call.ranOn), call.giveUpAtMs);
  }

  /** The hook of {@link ClusterCommands.send} for `call`. */
  #redirectHook(call: ScriptCall): (node: string) => number {
    return (node) => this.#redirected(call, node);
  }

  /**
   * `address` (`host:port` as a MOVED or ASK reply names it) as the slot map names nodes: through
   * the client's `natMap`, which ioredis applies to the slot map but not to a redirection's target.
   */
  #nodeKeyOf(address: string): string {
    const natMapper = (
      this.#client as unknown as { natMapper?: (key: string) => { host: string; port: number } }
    ).natMapper;
    const mapped = natMapper?.call(this.#client, address);
    return mapped === undefined ? address : `${mapped.host}:${mapped.port}`;
  }

  /** The call as FCALL of the check function. */
  #fcall(call: ScriptCall): Promise<unknown> {
    if (this.#commands !== undefined)
      return this.#commands.send(
        'fcall',
        checkProgram.functionName,
        call.keys,
        call.args,
        this.#redirectHook(call),
      );
    return this.#client.fcall(checkProgram.functionName, call.keys.length, ...call.keys, ...call.args);
  }

  /** The call as EVALSHA of the check script. */
  #evalsha(call: ScriptCall): Promise<unknown> {
    if (this.#commands !== undefined)
      return this.#commands.send('evalsha', checkScriptSha, call.keys, call.args, this.#redirectHook(call));
    return this.#client.evalsha(checkScriptSha, call.keys.length, ...call.keys, ...call.args);
  }

  /** The call as EVAL of the check script. */
  #eval(call: ScriptCall): Promise<unknown> {
    if (this.#commands !== undefined)
      return this.#commands.send('eval', checkScript, call.keys, call.args, this.#redirectHook(call));
    return this.#client.eval(checkScript, call.keys.length, ...call.keys, ...call.args);
  }

  /**
   * Sends one call as its own command: FCALL (loading the library and calling again when the
   * server says it lacks it), or with scripts EVALSHA, then EVAL on NOSCRIPT. The common case, a
   * function or script the server holds, is one command and one `then`; the recoveries take the
   * slower paths below.
   */
  #send(call: ScriptCall, giveUp: GiveUp | undefined): Promise<ConsumeOutcome[][]> {
    this.#stampExpiry(call, giveUp);
    const sentAt = performance.now();
    if (this.#library.enabled)
      return this.#fcall(call).then(
        (reply) => this.#read(call, reply, sentAt, performance.now(), giveUp),
        (error: unknown) => this.#afterFunctionError(call, giveUp, error),
      );
    if (this.#library.probe()) return this.#sendProbe(call, giveUp, sentAt);
    return this.#evalsha(call).then(
      (reply) => this.#read(call, reply, sentAt, performance.now(), giveUp),
      (error: unknown) => {
        if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
        return this.#sendScript(call, giveUp, true);
      },
    );
  }

  /**
   * {@link #send} of a call that decides one request (most calls on a Cluster), resolving to that
   * request's outcomes without a further `then`.
   */
  #sendOnly(call: ScriptCall, giveUp: GiveUp | undefined): Promise<ConsumeOutcome[]> {
    if (!this.#library.enabled) return this.#send(call, giveUp).then(onlyOutcomes);
    this.#stampExpiry(call, giveUp);
    const sentAt = performance.now();
    return this.#fcall(call).then(
      (reply) => this.#read(call, reply, sentAt, performance.now(), giveUp)[0]!,
      (error: unknown) => this.#afterFunctionError(call, giveUp, error).then(onlyOutcomes),
    );
  }

  /**
   * The one FCALL of a retry while checks run as scripts. A reply, a missing library or an
   * out-of-memory refusal all mean the server took the command: functions are back for every
   * call. A refusal is handled by {@link #afterFunctionError} (scripts until the next retry).
   */
  #sendProbe(call: ScriptCall, giveUp: GiveUp | undefined, sentAt: number): Promise<ConsumeOutcome[][]> {
    return this.#fcall(call).then(
      (reply) => {
        this.#library.resume();
        return this.#read(call, reply, sentAt, performance.now(), giveUp);
      },
      (error: unknown) => {
        const message = String((error as Error)?.message);
        if (message.startsWith(functionNotFound) || outOfMemory(message)) this.#library.resume();
        else if (!refusesFunctions(message)) this.#library.release();
        return this.#afterFunctionError(call, giveUp, error);
      },
    );
  }

  /**
   * A FCALL that failed without running: the server lacks the library (load it, then call
   * again), refuses functions (switch to scripts) or refused it out of memory (a script runs
   * until its first write, so a refusal is still answered). Any other error may have counted.
   */
  #afterFunctionError(
    call: ScriptCall,
    giveUp: GiveUp | undefined,
    error: unknown,
  ): Promise<ConsumeOutcome[][]> {
    const message = String((error as Error)?.message);
    if (message.startsWith(functionNotFound)) return this.#sendLoading(call, giveUp);
    if (outOfMemory(message)) return this.#sendScript(call, giveUp, false);
    if (!refusesFunctions(message)) return Promise.reject(error);
    this.#library.stop(message);
    return this.#sendScript(call, giveUp, false);
  }

  /** {@link #send} that loads the code first: the library, then FCALL; or EVAL. */
  async #sendLoading(call: ScriptCall, giveUp: GiveUp | undefined): Promise<ConsumeOutcome[][]> {
    this.#stampExpiry(call, giveUp);
    if (this.#library.enabled) {
      const called = await this.#callFunction(call);
      if (called !== undefined)
        return this.#read(call, called.reply, called.sentAt, performance.now(), giveUp);
    }
    return this.#sendScript(call, giveUp, !this.#library.enabled);
  }

  /**
   * The call as a script: EVALSHA, then on NOSCRIPT an EVAL that loads it (at once when `load`),
   * shared with the calls in flight to that server (see {@link #evalLoading}).
   */
  async #sendScript(
    call: ScriptCall,
    giveUp: GiveUp | undefined,
    load: boolean,
  ): Promise<ConsumeOutcome[][]> {
    if (!load) {
      this.#stampExpiry(call, giveUp);
      const sentAt = performance.now();
      try {
        const reply = await this.#evalsha(call);
        return this.#read(call, reply, sentAt, performance.now(), giveUp);
      } catch (error) {
        if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
      }
    }
    const { reply, sentAt } = await this.#evalLoading(call, giveUp);
    return this.#read(call, reply, sentAt, performance.now(), giveUp);
  }

  /**
   * The call on a server that lacks the script. The first such call sends it as EVAL (which
   * loads the script and runs the call, in one round trip); calls that found no script while
   * that EVAL is out wait for it, then EVALSHA. Before, each sent an EVAL of its own: a new
   * process's first ticks (a tick's keys go in calls of up to 32) each sent the whole script
   * (~46 KB) and had Redis hash it, 7 EVALs for 200 first checks instead of one. Should the
   * script be missing again (a load that failed, a SCRIPT FLUSH in between), a waiter sends its
   * own EVAL. Stamped for the time it is sent: a waiter's expiry is set after its wait.
   */
  async #evalLoading(
    call: ScriptCall,
    giveUp: GiveUp | undefined,
  ): Promise<{ reply: unknown; sentAt: number }> {
    const server = this.#scriptServerOf(call);
    const loading = this.#scriptLoads.get(server);
    if (loading !== undefined) {
      await loading;
      this.#stampExpiry(call, giveUp);
      const sentAt = performance.now();
      try {
        return { reply: await this.#evalsha(call), sentAt };
      } catch (error) {
        if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
      }
    }
    // A MOVED may have moved the slot meanwhile: stamped for where it goes now.
    this.#stampExpiry(call, giveUp);
    const sentAt = performance.now();
    const evaluated = this.#eval(call);
    const loaded = evaluated.then(
      () => undefined,
      () => undefined,
    );
    this.#scriptLoads.set(server, loaded);
    loaded.then(() => {
      if (this.#scriptLoads.get(server) === loaded) this.#scriptLoads.delete(server);
    });
    return { reply: await evaluated, sentAt };
  }

  /** The server a call goes to, as {@link #scriptLoads} names it. */
  #scriptServerOf(call: ScriptCall): string {
    if (this.#commands === undefined) return '';
    return (this.#client as Cluster).slots[call.slot ?? this.#slotOf(call.keys[0]!)]?.[0] ?? '';
  }

  /**
   * Loads the check library, then FCALLs the function (the call that preceded it found no such
   * function; neither error ran anything, so the retry counts once). `undefined` when the server
   * refuses functions (the store has switched to scripts), or when the library went missing
   * again after loads that succeeded: the caller then sends this call as a script.
   */
  async #callFunction(
    call: ScriptCall,
    everywhere = false,
  ): Promise<{ reply: unknown; sentAt: number } | undefined> {
    const loadError = await this.#library.load(call.keys[0]!, everywhere);
    if (!this.#library.enabled) return undefined;
    const sentAt = performance.now();
    try {
      const reply = await this.#fcall(call);
      return { reply, sentAt };
    } catch (error) {
      const message = String((error as Error)?.message);
      if (message.startsWith(functionNotFound)) {
        // Still missing after a load that failed: this server cannot keep it (a managed Redis
        // that refuses FUNCTION LOAD with an error of its own, say). Scripts work everywhere.
        if (loadError !== undefined) {
          this.#library.stop(`not found after FUNCTION LOAD (${loadError})`);
          return undefined;
        }
        // Loaded, yet missing: the call ran on another server than the one loaded (on a Cluster,
        // a slot being migrated answers ASK, which leaves the slot map as it was), or the library
        // was lost again in between (FUNCTION FLUSH or DELETE). Every master gets it, once; if
        // that is not enough, this call runs as a script and the next one tries functions again.
        if (!everywhere) return this.#callFunction(call, true);
        return undefined;
      }
      // Out of memory, a function that may write is refused before it runs, while a script runs
      // until its first write: a check that refuses writes nothing and is still answered.
      if (outOfMemory(message)) return undefined;
      if (!refusesFunctions(message)) throw error;
      this.#library.stop(message);
      return undefined;
    }
  }

  /** Reads one call's reply, teaching the clock of the server that answered. */
  #read(
    call: ScriptCall,
    reply: unknown,
    sentAt: number,
    receivedAt: number,
    giveUp: GiveUp | undefined,
  ): ConsumeOutcome[][] {
    const values = checkedReply(reply);
    const redisNow = values[0]!;
    // The server that answered: the one a redirection named, else the slot's.
    const clock = call.ranOn === undefined ? this.#clockOfCall(call) : this.#clockOfNode(call.ranOn);
    // The second value is 0 when the call reached Redis after its expiry and did nothing.
    if (values[1] !== 0) {
      clock?.observe(sentAt, redisNow, receivedAt);
      return parseReply(values, call.requests);
    }
    clock?.observeExpired(sentAt, redisNow, receivedAt, giveUp?.atMs ?? Number.NEGATIVE_INFINITY);
    throw new TimeoutError(
      'rate-limit check on redis (skipped: it reached Redis after its deadline)',
      giveUp?.deadlineMs ?? 0,
    );
  }

  /** {@link #clockOf} for the keys of `call` (the slot computed once per call). */
  #clockOfCall(call: ScriptCall): RedisClockOffset | undefined {
    if ((this.#client as Cluster).isCluster !== true) return this.#clock;
    call.slot ??= this.#slotOf(call.keys[0]!);
    return this.#clockOfSlot(call.slot);
  }

  /**
   * The clock offset of the server that holds `hashKey` (`undefined`: Cluster slots not known
   * yet). A call that ioredis redirects (MOVED, ASK) is stamped again for the node it goes to
   * ({@link #redirected}), and one the store sends again for its new master (`stampedExpiry`).
   */
  #clockOf(hashKey: string): RedisClockOffset | undefined {
    if ((this.#client as Cluster).isCluster !== true) return this.#clock;
    return this.#clockOfSlot(this.#slotOf(hashKey));
  }

  /** {@link #clockOf} for a Cluster slot already known. */
  #clockOfSlot(slot: number): RedisClockOffset | undefined {
    const node = (this.#client as Cluster).slots[slot]?.[0];
    if (node === undefined) return undefined;
    return this.#clockOfNode(node);
  }

  /**
   * The clock offset of the Cluster node `node` (`host:port` as the slot map names it). Meeting a
   * new node, the store forgets the nodes the client no longer knows (gone from its slot map: a
   * master replaced, an address changed), so that the map holds the client's nodes and at most
   * this one more, however many came and went over the service's life.
   */
  #clockOfNode(node: string): RedisClockOffset {
    let clock = this.#nodeClocks.get(node);
    if (clock === undefined) {
      if (this.#nodeClocks.size > 0) this.#forgetGoneNodes();
      clock = new RedisClockOffset();
      this.#nodeClocks.set(node, clock);
    }
    return clock;
  }

  /** Drops the clock offsets of nodes no longer in the Cluster client's pool (its slot map's nodes). */
  #forgetGoneNodes(): void {
    const known = new Set<string>();
    for (const node of (this.#client as Cluster).nodes('all'))
      known.add(`${node.options.host}:${node.options.port}`);
    for (const node of this.#nodeClocks.keys()) if (!known.has(node)) this.#nodeClocks.delete(node);
  }

  /**
   * With the offline queue off, commands sent before the very first connection fail at once;
   * a new client is not an outage, so wait for it (later disconnects fail fast instead), but no
   * longer than `giveUp`: then the wait rejects with core's `TimeoutError` and the call is never
   * sent. Its caller has answered it by then (a fail mode), and sent at the connection it would
   * count without an expiry (the server's clock is not known before its first reply).
   */
  #waitForFirstConnection(giveUp: GiveUp | undefined): Promise<void> | undefined {
    if (this.#everReady) return undefined;
    const client = this.#client as Redis;
    if (client.status === 'ready') {
      this.#everReady = true;
      return undefined;
    }
    if (!this.#listeningForReady) {
      this.#listeningForReady = true;
      if (client.status === 'wait') client.connect().catch(() => {});
      // One 'ready' listener for all the stores on the client (see client-watches.ts).
      void nextReady(client).then(() => {
        this.#everReady = true;
        for (const wake of this.#readyWaiters) wake();
        this.#readyWaiters.clear();
      });
    }
    return new Promise<void>((resolve, reject) => {
      if (giveUp === undefined) {
        this.#readyWaiters.add(resolve);
        return;
      }
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(
        () => {
          this.#readyWaiters.delete(wake);
          reject(
            new TimeoutError(
              'rate-limit call on redis (not sent: no connection yet by its deadline)',
              giveUp.deadlineMs,
            ),
          );
        },
        Math.max(0, giveUp.atMs - performance.now()),
      );
      timer.unref();
      this.#readyWaiters.add(wake);
    });
  }

  /**
   * Cluster with its offline queue off: `send()` once the master that serves `call` is connected.
   * ioredis connects to masters lazily and fails a command for a master still connecting at once,
   * unsent; so a new client's first batch would reach each master with one call, the rest failing.
   * A master that is not connected is connected now, and only its own calls wait for it, until
   * their caller gives up (then they are never sent: `TimeoutError`). Once every master has been
   * seen connected, this costs one flag test.
   */
  #whenMasterReady<T>(call: ScriptCall, giveUp: GiveUp | undefined, send: () => Promise<T>): Promise<T> {
    if (this.#mastersReady) return send();
    const client = this.#client as Cluster;
    const masters = client.nodes('master');
    if (masters.every((master) => master.status === 'ready')) {
      this.#mastersReady = true;
      return send();
    }
    call.slot ??= this.#slotOf(call.keys[0]!);
    const serving = client.slots[call.slot]?.[0];
    // A slot the client does not know goes to any node (which redirects it): wait for them all.
    const known = masters.find((node) => `${node.options.host}:${node.options.port}` === serving);
    const waitFor = (known === undefined ? masters : [known]).filter((master) => master.status !== 'ready');
    if (waitFor.length === 0) return send();
    return connected(waitFor, giveUp).then(send);
  }

  /**
   * Resolves once a command on `key` can be sent: the client connected once, and on a Cluster with
   * its offline queue off, the master serving the key connected (see {@link #whenMasterReady}).
   */
  async #whenKeyReady(key: string, giveUp: GiveUp | undefined): Promise<void> {
    const waiting = this.#waitForFirstConnection(giveUp);
    if (waiting !== undefined) await waiting;
    if (this.#mastersReady) return;
    const call: ScriptCall = {
      requests: [],
      keys: [key],
      args: [],
      slot: undefined,
      indices: undefined,
      giveUpAtMs: undefined,
      ranOn: undefined,
    };
    await this.#whenMasterReady(call, giveUp, () => Promise.resolve());
  }

  /** Peek, refund, penalize, block or unblock `key` in one script call (see src/stores/redis-adjust.ts). */
  async adjust(
    key: string,
    limits: readonly LimitPolicy[],
    adjustment: StoreAdjustment,
    block: AutoBlockPolicy | undefined,
    options?: ConsumeOptions,
  ): Promise<ConsumeOutcome> {
    const giveUp = giveUpOf(options);
    const hashKey = this.#hashKey(key);
    await this.#whenKeyReady(hashKey, giveUp);
    // A deadline travels in the clock of the server holding the key, as for checks.
    const send = () =>
      adjustOnRedis(
        this.#client,
        key,
        hashKey,
        limits,
        adjustment,
        block,
        () => this.#clockOf(hashKey),
        // A wait above (or a resend) took part of the deadline: Redis must skip the call from the
        // caller's give-up on, not a whole deadline later (a refund the caller saw fail must not apply).
        giveUp === undefined
          ? options
          : { ...options, deadlineMs: Math.max(1, giveUp.atMs - performance.now()) },
        this.#commands,
        (node) => this.#clockOfNode(this.#nodeKeyOf(node)),
      );
    if (this.#commands === undefined) return send();
    const slot = this.#slotOf(hashKey);
    for (let resends = 0; ; resends += 1)
      try {
        return await send();
      } catch (error) {
        if (!neverSent(error) || resends >= maxResends) throw error;
        await this.#beforeResend(slot, giveUp, error);
      }
  }
}

/** `options.deadlineMs` as an absolute local time (none when the caller waits forever). */
function giveUpOf(options: ConsumeOptions | undefined): GiveUp | undefined {
  const deadlineMs = options?.deadlineMs;
  if (deadlineMs === undefined || !Number.isFinite(deadlineMs) || deadlineMs <= 0) return undefined;
  return { atMs: performance.now() + deadlineMs, deadlineMs };
}

/**
 * The script's reply (header: Redis's clock, then 0 if the call expired instead of running): an
 * array of integers (an expired call's `[now, 0]`), or, from a call that ran, one string of them
 * (see `replyValues`).
 */
function checkedReply(reply: unknown): number[] {
  if (typeof reply === 'string') {
    const values = replyValues(reply);
    if (values !== undefined && values.length >= 2) return values;
  }
  if (!Array.isArray(reply) || reply.length < 2 || typeof reply[0] !== 'number')
    throw new RateLimitStoreError('unexpected reply from the rate-limit script', { details: { reply } });
  return reply as number[];
}

/** The outcomes after the header (two values: Redis's now and the "ran" flag). */
function parseReply(values: number[], requests: readonly ConsumeRequest[]): ConsumeOutcome[][] {
  let expected = 2;
  for (const { limits, costs } of requests)
    expected += (1 + limits.length * replyValuesPerLimit) * costs.length;
  if (values.length !== expected)
    throw new RateLimitStoreError('unexpected reply from the rate-limit script', {
      details: { reply: values },
    });
  let at = 2;
  return requests.map(({ limits, costs }) => {
    const outcomes: ConsumeOutcome[] = new Array(costs.length);
    for (let index = 0; index < costs.length; index += 1) {
      const blockedMs = values[at]!;
      at += 1;
      const decisions: Decision[] = new Array(limits.length);
      for (let limit = 0; limit < limits.length; limit += 1) {
        decisions[limit] = decisionFromReply(limits[limit]!, values, at);
        at += replyValuesPerLimit;
      }
      outcomes[index] = { decisions, blockedMs };
    }
    return outcomes;
  });
}

/** The outcomes of a call's only request. */
const onlyOutcomes = (outcomes: ConsumeOutcome[][]): ConsumeOutcome[] => outcomes[0]!;

/**
 * One promise per request of a batch split into `calls` (each deciding `call.indices` of the
 * requests), whose replies are `sent` (one promise per call): its own call's outcome, as soon as
 * that call answers.
 */
function perRequest(
  count: number,
  calls: readonly ScriptCall[],
  sent: readonly Promise<ConsumeOutcome[][]>[],
): Promise<ConsumeOutcome[]>[] {
  const outcomes: Promise<ConsumeOutcome[]>[] = new Array(count);
  for (let index = 0; index < calls.length; index += 1) {
    const reply = sent[index]!;
    const indices = calls[index]!.indices!;
    for (let at = 0; at < indices.length; at += 1) outcomes[indices[at]!] = reply.then((all) => all[at]!);
  }
  return outcomes;
}

/**
 * The calls waiting for each master still connecting, woken together by one `ready` and one
 * `close` listener on it: a listener pair per held call piled up (Node warns past 10 per event)
 * and outlived the calls that gave up, for as long as the master stayed connecting.
 */
const masterWaiters = new WeakMap<Redis, Set<() => void>>();

/** Calls `wake` once `master` is connected or its connection has failed; returns its removal. */
function onMasterSettled(master: Redis, wake: () => void): () => void {
  let waiters = masterWaiters.get(master);
  if (waiters === undefined) {
    const all = new Set<() => void>();
    waiters = all;
    masterWaiters.set(master, all);
    const settle = () => {
      master.off('ready', settle);
      master.off('close', settle);
      master.off('end', settle);
      masterWaiters.delete(master);
      for (const waiter of all) waiter();
    };
    master.on('ready', settle);
    master.on('close', settle);
    // A connection the Cluster drops while it is still connecting (its node left the slot map)
    // may end without a close.
    master.on('end', settle);
    if (master.status === 'wait') master.connect().catch(() => {});
  }
  waiters.add(wake);
  const own = waiters;
  return () => {
    own.delete(wake);
  };
}

/**
 * Resolves once every one of `masters` is connected (it connects those not yet asked) or its
 * connection has failed (the call is then sent, to fail as it would have); rejects with core's
 * `TimeoutError` when the caller gives up first (the call is then never sent, and leaves nothing
 * behind on the masters).
 */
function connected(masters: readonly Redis[], giveUp: GiveUp | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let left = masters.length;
    let timer: NodeJS.Timeout | undefined;
    const removals = masters.map((master) => {
      let done = false;
      return onMasterSettled(master, () => {
        if (done) return;
        done = true;
        left -= 1;
        if (left > 0) return;
        clearTimeout(timer);
        resolve();
      });
    });
    if (giveUp === undefined) return;
    timer = setTimeout(
      () => {
        for (const remove of removals) remove();
        reject(
          new TimeoutError(
            'rate-limit call on redis (not sent: its master was not connected by its deadline)',
            giveUp.deadlineMs,
          ),
        );
      },
      Math.max(0, giveUp.atMs - performance.now()),
    );
    timer.unref();
  });
}
