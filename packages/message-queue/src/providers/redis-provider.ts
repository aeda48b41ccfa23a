import { parseOptions } from '@noa/core';
import type { Cluster, Redis } from 'ioredis';
import { z } from 'zod';
import type { ChildrenResults, JobCounts, JobInfo, JobRecord, JobState } from '../job-record.js';
import {
  allCapabilities,
  type CancelOutcome,
  type CancelResult,
  type DeadLetteredParent,
  type ExchangeRequest,
  type ExchangeResponse,
  type LeasedJob,
  type LeaseRenewal,
  type MaintenanceResult,
  type ProviderCapabilities,
  type QueueProvider,
  type RetentionPolicy,
  type Settlement,
  type StalledRelease,
  type StalledReleaseResult,
} from '../provider.js';
import { deliveredFrom, settledWithDeliveredData } from './delivered-data.js';
import { type LuaScript, runLuaScript } from './lua-scripts.js';
import { decodeRecord, encodeRecord } from './record-codec.js';
import {
  cancelledErrorEntry,
  chunksOf,
  countsOf,
  deadParentsIn,
  forEachDeadPage,
  jobInfoOf,
  listDeadIn,
  readChildrenResults,
  redrivenRecord,
  releaseResult,
  releaseScriptHead,
  stalledErrorEntry,
} from './redis-job-data.js';
import {
  addChunkSizeOption,
  clientKeyPrefix,
  closeTimeoutOption,
  maxArgumentBytesOption,
  redisConnectionOption,
  redisPrefixOption,
} from './redis-options.js';
import { loadRedisScripts, type RedisScriptName } from './redis-scripts.js';
import { closeSubscriber, duplicateConnection, subscribeWhenReady } from './redis-subscriber.js';
import { ArgumentLimit, buildSettleEntry, type SettleEntry } from './settle-batches.js';
import { Wakers } from './wakers.js';

/** Options of {@link RedisProvider}. */
export const redisProviderOptionsSchema = z
  .object({
    /** An ioredis 5.4+ or 6 client or cluster, owned by the caller (not closed by the provider). */
    connection: redisConnectionOption,
    /** Key prefix; each queue's keys are `<prefix>:{<queue>}:…` (one hash slot per queue). */
    prefix: redisPrefixOption('noa:mq'),
    /** Jobs per script call when adding in bulk. */
    addChunkSize: addChunkSizeOption,
    /** How long `close()` waits for Redis to acknowledge QUIT on its pub/sub connection before dropping it. */
    closeTimeoutMs: closeTimeoutOption,
    /**
     * The largest argument Redis takes (`proto-max-bulk-len`); default: read from the server when
     * first needed (see "Failure modes": a result too large for Redis).
     */
    maxArgumentBytes: maxArgumentBytesOption,
  })
  .strict();

/** Options of {@link RedisProvider}. */
export type RedisProviderOptions = z.input<typeof redisProviderOptionsSchema>;

const capabilities: ProviderCapabilities = allCapabilities;

/** One settlement's entry (see {@link buildSettleEntry}). */
const settleEntry = (settlement: Settlement, record: JobRecord): SettleEntry =>
  buildSettleEntry(settlement, record, true);

interface QueueState {
  /** The queue's key prefix and its meta key (the script's one declared key), built once. */
  prefix: string;
  meta: string;
  /** The last group weights sent and their JSON (a worker sends the same, never-mutated object every time). */
  weights?: Record<string, number>;
  weightsJson?: string;
  wakers: Wakers;
  cancelListeners: Set<(id: string) => void>;
  notified: number;
  seen: number;
  subscribed?: Promise<void>;
}

/**
 * The Redis provider (ioredis 5.4+ or 6, Redis ≥ 6.2, cluster-safe): one Lua script per state
 * transition, batch leases and batch acknowledgements, pub/sub wake-ups. At-least-once: a job
 * leaves Redis only when a worker has settled it; leases of dead workers expire and their
 * jobs are requeued.
 */
export class RedisProvider implements QueueProvider {
  readonly name = 'redis';
  /** What this provider supports (also readable before constructing one). */
  static readonly capabilities: ProviderCapabilities = capabilities;
  readonly capabilities = capabilities;
  readonly #redis: Redis | Cluster;
  /** The largest argument Redis takes (an exchange's settlements are one). */
  readonly #argumentLimit: ArgumentLimit;
  readonly #prefix: string;
  /** The connection's ioredis `keyPrefix` (see {@link clientKeyPrefix}). */
  readonly #clientPrefix: string;
  readonly #chunk: number;
  readonly #scripts: Record<RedisScriptName, LuaScript>;
  readonly #queues = new Map<string, QueueState>();
  readonly #channels = new Map<string, string>();
  #subscriber: Redis | Cluster | undefined;
  #closed = false;
  readonly #closeTimeoutMs: number;
  /** Resolves at `close()`: a SUBSCRIBE that Redis never answers must not hold a worker's wait. */
  readonly #whenClosed: Promise<void>;
  #resolveWhenClosed: () => void = () => {};

  constructor(options: RedisProviderOptions) {
    const parsed = parseOptions('RedisProvider', redisProviderOptionsSchema, options);
    this.#redis = parsed.connection;
    this.#prefix = parsed.prefix;
    this.#clientPrefix = clientKeyPrefix(parsed.connection);
    this.#chunk = parsed.addChunkSize;
    this.#closeTimeoutMs = parsed.closeTimeoutMs;
    this.#argumentLimit = new ArgumentLimit(parsed.connection, parsed.maxArgumentBytes);
    this.#scripts = loadRedisScripts();
    this.#whenClosed = new Promise<void>((resolve) => {
      this.#resolveWhenClosed = resolve;
    });
  }

  /** The prefix of a queue's keys as commands name them (ioredis adds the client's `keyPrefix`). */
  #keyPrefix(queue: string): string {
    return `${this.#prefix}:{${queue}}:`;
  }

  /** The same prefix as the keys are stored: for Lua scripts and pub/sub channels. */
  #storedPrefix(queue: string): string {
    return `${this.#clientPrefix}${this.#keyPrefix(queue)}`;
  }

  /** Runs a script by EVALSHA; on NOSCRIPT (first use, or after a Redis restart) loads it once. */
  #run(name: RedisScriptName, queue: string, args: (string | number)[]): Promise<unknown> {
    return this.#runIn(name, this.#state(queue), args);
  }

  #runIn(name: RedisScriptName, state: QueueState, args: (string | number)[]): Promise<unknown> {
    return runLuaScript(this.#redis, this.#scripts[name], state.meta, state.prefix, args);
  }

  #state(queue: string): QueueState {
    let state = this.#queues.get(queue);
    if (!state) {
      state = {
        prefix: this.#storedPrefix(queue),
        meta: `${this.#keyPrefix(queue)}meta`,
        wakers: new Wakers(),
        cancelListeners: new Set(),
        notified: 0,
        seen: 0,
      };
      this.#queues.set(queue, state);
    }
    return state;
  }

  #subscribe(queue: string, state: QueueState): Promise<void> {
    // After close() nothing would end a new pub/sub connection: callers just stop waiting.
    if (this.#closed) return Promise.resolve();
    if (state.subscribed) return state.subscribed;
    if (!this.#subscriber) {
      const subscriber = duplicateConnection(this.#redis);
      subscriber.on('error', () => {});
      subscriber.on('message', (channel: string, message: string) => this.#onMessage(channel, message));
      this.#subscriber = subscriber;
    }
    const channel = `${this.#storedPrefix(queue)}ev`;
    this.#channels.set(channel, queue);
    state.subscribed = Promise.race([subscribeWhenReady(this.#subscriber, channel), this.#whenClosed]);
    return state.subscribed;
  }

  #onMessage(channel: string, message: string): void {
    const queue = this.#channels.get(channel);
    if (queue === undefined) return;
    const state = this.#state(queue);
    if (message === 'w') {
      state.notified += 1;
      state.wakers.wakeAll();
    } else if (message.startsWith('c:')) {
      const id = message.slice(2);
      for (const listener of state.cancelListeners) listener(id);
    }
  }

  async add(queue: string, records: JobRecord[], now: number): Promise<boolean[]> {
    const encoded = records.map(encodeRecord);
    await this.#argumentLimit.checkRecords(queue, records, encoded);
    // Sent without waiting for each other: one pipelined burst of script calls.
    let offset = 0;
    const replies = await Promise.all(
      chunksOf(records, this.#chunk).map((chunk) => {
        const args: (string | number)[] = [now, chunk.length];
        for (const record of chunk) {
          args.push(record.id, encoded[offset++]!, record.priority, record.group ?? '', record.availableAt);
        }
        return this.#run('add', queue, args) as Promise<number[]>;
      }),
    );
    return replies.flat().map((flag) => flag === 1);
  }

  async addFlow(queue: string, parent: JobRecord, children: JobRecord[], now: number): Promise<boolean> {
    const records = [parent, ...children];
    const encoded = records.map(encodeRecord);
    await this.#argumentLimit.checkRecords(queue, records, encoded);
    const args: (string | number)[] = [now, parent.id, encoded[0]!, children.length];
    for (const [index, record] of children.entries()) {
      args.push(record.id, encoded[index + 1]!, record.priority, record.group ?? '', record.availableAt);
    }
    return (await this.#run('add-flow', queue, args)) === 1;
  }

  async exchange(queue: string, request: ExchangeRequest): Promise<ExchangeResponse> {
    const state = this.#state(queue);
    state.seen = state.notified;
    if (state.weights !== request.groupWeights) {
      state.weights = request.groupWeights;
      state.weightsJson = JSON.stringify(request.groupWeights);
    }
    // One argument of settlements, unless it is over what Redis takes (`proto-max-bulk-len`):
    // then several, the earlier ones settling only; a completion over it alone is not sent (the
    // worker fails its try). Refused, it failed every exchange carrying it, for ever.
    // A failed try's retry (or dead letter) is stored with the payload as leased, not as the
    // handler left it.
    const {
      last: encoded,
      earlier,
      oversized,
    } = await this.#argumentLimit.pack(request.settle.map(settledWithDeliveredData), settleEntry);
    const stale: string[] = [];
    const parents: DeadLetteredParent[] = [];
    const settleOnly = async (batch: string) => {
      const reply = (await this.#runIn('exchange', state, [
        request.now,
        request.leaseUntil - request.now,
        0,
        0,
        request.defaultGroupWeight,
        state.weightsJson!,
        batch,
      ])) as [string, string, number, number, ...string[]];
      stale.push(...(reply.slice(4, 4 + reply[2]) as string[]));
      parents.push(...deadParentsIn(reply, 4 + reply[2], reply[3]));
    };
    for (const batch of earlier) await settleOnly(batch);
    const reply = (await this.#runIn('exchange', state, [
      request.now,
      request.leaseUntil - request.now,
      request.fetch,
      request.promoteDelayed ? 1 : 0,
      request.defaultGroupWeight,
      state.weightsJson!,
      encoded,
    ])) as [string, string, number, number, ...string[]];
    // {next due, lease token, refused count, parents count, refused ids…, parents…, records…}
    // (see exchange.lua).
    const [nextDue, lease, staleCount, parentCount] = reply;
    parents.push(...deadParentsIn(reply, 4 + staleCount, parentCount));
    const firstRecord = 4 + staleCount + 3 * parentCount;
    const jobs: JobRecord[] = [];
    for (let index = firstRecord; index < reply.length; index += 1) {
      const stored = reply[index] as string;
      const record = deliveredFrom(decodeRecord(stored), stored);
      record.lease = lease;
      jobs.push(record);
    }
    const response: ExchangeResponse = { jobs };
    if (staleCount > 0) stale.push(...(reply.slice(4, 4 + staleCount) as string[]));
    if (parents.length > 0) response.parentsDeadLettered = parents;
    if (stale.length > 0) response.stale = stale;
    if (oversized) response.oversized = oversized;
    if (nextDue) response.nextDueAt = Number(nextDue);
    return response;
  }

  async extendLeases(
    queue: string,
    jobs: readonly LeasedJob[],
    leaseUntil: number,
    now: number,
  ): Promise<LeaseRenewal> {
    if (jobs.length === 0) return { cancelled: [], lost: [] };
    // Only the duration: the script ends the lease by Redis's clock.
    const args: (string | number)[] = [leaseUntil - now];
    for (const job of jobs) args.push(job.id, job.lease ?? '');
    const [cancelled, lost] = (await this.#run('extend', queue, args)) as [string[], string[]];
    return { cancelled, lost };
  }

  async release(
    queue: string,
    records: JobRecord[],
    now: number,
    stalled?: StalledRelease,
  ): Promise<StalledReleaseResult | undefined> {
    if (records.length === 0) return releaseResult(stalled, undefined);
    const args = releaseScriptHead(now, stalled);
    for (const record of records)
      args.push(record.id, record.priority, record.group ?? '', record.lease ?? '');
    return releaseResult(stalled, (await this.#run('release', queue, args)) as number[]);
  }

  async maintain(
    queue: string,
    now: number,
    maxStalls: number,
    retention: RetentionPolicy,
  ): Promise<MaintenanceResult> {
    const stallError = stalledErrorEntry(maxStalls, now);
    const [recovered, deadLettered, removed, parentsDeadLettered] = (await this.#run('maintain', queue, [
      now,
      maxStalls,
      retention.completedCount,
      retention.completedAgeMs,
      retention.deadCount,
      retention.deadAgeMs,
      JSON.stringify(stallError),
    ])) as number[];
    const result: MaintenanceResult = {
      recovered: recovered ?? 0,
      deadLettered: deadLettered ?? 0,
      removed: removed ?? 0,
    };
    if (parentsDeadLettered) result.parentsDeadLettered = parentsDeadLettered;
    return result;
  }

  async waitForWork(queue: string, timeoutMs: number, signal: AbortSignal): Promise<void> {
    const state = this.#state(queue);
    await this.#subscribe(queue, state);
    if (state.notified !== state.seen) {
      state.seen = state.notified;
      return;
    }
    if (this.#closed) return;
    return state.wakers.wait(timeoutMs, signal);
  }

  async getJob(queue: string, id: string): Promise<JobInfo | undefined> {
    const reply = (await this.#run('get-job', queue, [id])) as
      | [string, string, string, string, string, string]
      | null;
    if (!reply) return undefined;
    const [raw, state, finishedAt, result, progress, terminalError] = reply;
    return jobInfoOf(raw, state as JobState, finishedAt, result, progress, terminalError);
  }

  async counts(queue: string): Promise<JobCounts> {
    return countsOf(await this.#run('counts', queue, []));
  }

  async pause(queue: string): Promise<void> {
    await this.#redis.hset(`${this.#keyPrefix(queue)}meta`, 'paused', '1');
  }

  async resume(queue: string): Promise<void> {
    const prefix = this.#keyPrefix(queue);
    await this.#redis.hdel(`${prefix}meta`, 'paused');
    await this.#redis.publish(`${this.#storedPrefix(queue)}ev`, 'w');
  }

  async drain(queue: string, includeDelayed: boolean): Promise<number> {
    return (await this.#run('drain', queue, [includeDelayed ? 1 : 0])) as number;
  }

  async setProgress(queue: string, id: string, progress: unknown): Promise<void> {
    await this.#run('progress', queue, [id, JSON.stringify(progress ?? null)]);
  }

  async cancel(queue: string, id: string, now: number): Promise<CancelResult> {
    const error = cancelledErrorEntry(id, now);
    const reply = (await this.#run('cancel', queue, [now, id, JSON.stringify(error)])) as unknown[];
    const result: CancelResult = { outcome: reply[0] as CancelOutcome };
    const parents = Number(reply[1] ?? 0);
    if (parents > 0) result.parentsDeadLettered = deadParentsIn(reply, 2, parents);
    return result;
  }

  async onCancel(queue: string, listener: (id: string) => void): Promise<() => void> {
    const state = this.#state(queue);
    await this.#subscribe(queue, state);
    state.cancelListeners.add(listener);
    return () => state.cancelListeners.delete(listener);
  }

  async childrenResults(queue: string, parentId: string): Promise<ChildrenResults> {
    return readChildrenResults(this.#redis, `${this.#keyPrefix(queue)}deps:${parentId}`);
  }

  listDead(queue: string, offset: number, limit: number): Promise<JobInfo[]> {
    return listDeadIn(this.#redis, this.#keyPrefix(queue), offset, limit, (id) => this.getJob(queue, id));
  }

  async redrive(queue: string, ids: string[] | undefined, now: number): Promise<number> {
    let moved = 0;
    await forEachDeadPage(
      this.#redis,
      this.#keyPrefix(queue),
      ids,
      (id) => this.getJob(queue, id),
      async (failed) => {
        const args: (string | number)[] = [now];
        for (const info of failed) {
          const fresh = redrivenRecord(info, now);
          args.push(fresh.id, encodeRecord(fresh), fresh.priority, fresh.group ?? '');
        }
        moved += (await this.#run('redrive', queue, args)) as number;
      },
    );
    return moved;
  }

  async purgeDead(queue: string, ids: string[] | undefined): Promise<number> {
    return (await this.#run('purge-dead', queue, ids ?? [])) as number;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const state of this.#queues.values()) {
      state.wakers.wakeAll();
    }
    this.#resolveWhenClosed();
    const subscriber = this.#subscriber;
    this.#subscriber = undefined;
    if (subscriber) await closeSubscriber(subscriber, this.#closeTimeoutMs);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
