import { ClosedError, maxTimerMs, parseOptions } from '@noa/core';
import type { Cluster, Redis } from 'ioredis';
import { z } from 'zod';
import type { ChildrenResults, JobCounts, JobInfo, JobRecord, JobState } from '../job-record.js';
import type {
  CancelOutcome,
  CancelResult,
  DeadLetteredParent,
  LeasedJob,
  LeaseRenewal,
  MaintenanceResult,
  RetentionPolicy,
  Settlement,
  StalledRelease,
  StalledReleaseResult,
} from '../provider.js';
import { type JobStateScriptName, loadJobStateScripts } from './job-state-scripts.js';
import type {
  DeliveryVerdict,
  JobStateStore,
  StateDelivery,
  StateEvent,
  StateExchange,
  StateExchangeResult,
  StatePublish,
} from './job-state-store.js';
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
import { closeSubscriber, duplicateConnection, subscribeWhenReady } from './redis-subscriber.js';
import { ArgumentLimit, buildSettleEntry, type SettleEntry } from './settle-batches.js';

/** Options of {@link RedisJobStateStore}. */
export const redisJobStateStoreOptionsSchema = z
  .object({
    /** An ioredis 5.4+ or 6 client or cluster, owned by the caller (not closed by the store). */
    connection: redisConnectionOption,
    /** Key prefix; each queue's keys are `<prefix>:{<queue>}:…` (one hash slot per queue). */
    prefix: redisPrefixOption('noa:mq:state'),
    /**
     * A message the store asked for (add, retry, recovery, redrive, released parent) that the
     * broker has not confirmed after this long is published again by the next maintenance pass.
     */
    outboxTimeoutMs: z.number().int().positive().max(maxTimerMs).default(30_000),
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

/** Options of {@link RedisJobStateStore}. */
export type RedisJobStateStoreOptions = z.input<typeof redisJobStateStoreOptionsSchema>;

/** '3': run under a lease of its own (a takeover, see exchange.lua). */
const verdicts: Record<string, DeliveryVerdict> = { '0': 'drop', '1': 'run', '2': 'requeue', '3': 'run' };

/** One settlement's entry (see {@link buildSettleEntry}). */
const settleEntry = (settlement: Settlement, record: JobRecord): SettleEntry =>
  buildSettleEntry(settlement, record, false);

/** Reads the flat `id, token, record` triples a script returns. */
function publishes(flat: unknown[], from: number): StatePublish[] {
  const out: StatePublish[] = [];
  for (let index = from; index + 2 < flat.length; index += 3) {
    out.push({ record: decodeRecord(String(flat[index + 2])), token: Number(flat[index + 1]) });
  }
  return out;
}

/**
 * The job state of a {@link RabbitMqProvider} kept in Redis (ioredis 5.4+ or 6, cluster-safe: every key
 * of a queue carries its `{queue}` hash tag). One Lua script per transition, so a dedupe claim,
 * a batch of settlements plus the verdicts on a batch of deliveries, or a maintenance pass is
 * one atomic round trip. Cancellations and pause/resume reach every process by pub/sub.
 */
export class RedisJobStateStore implements JobStateStore {
  readonly name = 'redis';
  readonly #redis: Redis | Cluster;
  /** The largest argument Redis takes (an exchange's settlements are one). */
  readonly #argumentLimit: ArgumentLimit;
  readonly #prefix: string;
  /** The connection's ioredis `keyPrefix` (see {@link clientKeyPrefix}). */
  readonly #clientPrefix: string;
  readonly #outboxMs: number;
  readonly #chunk: number;
  readonly #scripts: Record<JobStateScriptName, LuaScript>;
  readonly #listeners = new Map<string, Set<(event: StateEvent) => void>>();
  readonly #subscribed = new Map<string, Promise<void>>();
  #subscriber: Redis | Cluster | undefined;
  #closed = false;
  readonly #closeTimeoutMs: number;
  /** Rejects when `close()` is called: a SUBSCRIBE that Redis never answers must not outlive the store. */
  readonly #whenClosed: Promise<never>;
  #rejectWhenClosed: (error: Error) => void = () => {};

  constructor(options: RedisJobStateStoreOptions) {
    const parsed = parseOptions('RedisJobStateStore', redisJobStateStoreOptionsSchema, options);
    this.#redis = parsed.connection;
    this.#prefix = parsed.prefix;
    this.#clientPrefix = clientKeyPrefix(parsed.connection);
    this.#outboxMs = parsed.outboxTimeoutMs;
    this.#chunk = parsed.addChunkSize;
    this.#closeTimeoutMs = parsed.closeTimeoutMs;
    this.#argumentLimit = new ArgumentLimit(parsed.connection, parsed.maxArgumentBytes);
    this.#scripts = loadJobStateScripts();
    this.#whenClosed = new Promise<never>((_resolve, reject) => {
      this.#rejectWhenClosed = reject;
    });
    // Only a pending subscribe observes it; without one the rejection is expected and ignored.
    this.#whenClosed.catch(() => {});
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
  #run(name: JobStateScriptName, queue: string, args: (string | number)[]): Promise<unknown> {
    return runLuaScript(
      this.#redis,
      this.#scripts[name],
      `${this.#keyPrefix(queue)}meta`,
      this.#storedPrefix(queue),
      args,
    );
  }

  async add(queue: string, records: JobRecord[], now: number): Promise<number[]> {
    const encoded = records.map(encodeRecord);
    await this.#argumentLimit.checkRecords(queue, records, encoded);
    let offset = 0;
    const replies = await Promise.all(
      chunksOf(records, this.#chunk).map((chunk) => {
        const args: (string | number)[] = [now + this.#outboxMs, chunk.length];
        for (const record of chunk) {
          args.push(record.id, encoded[offset++]!, record.availableAt, record.group ?? '');
        }
        return this.#run('add', queue, args) as Promise<number[]>;
      }),
    );
    return replies.flat().map(Number);
  }

  async addFlow(
    queue: string,
    parent: JobRecord,
    children: JobRecord[],
    now: number,
  ): Promise<number[] | undefined> {
    const encoded = [parent, ...children].map(encodeRecord);
    await this.#argumentLimit.checkRecords(queue, [parent, ...children], encoded);
    const args: (string | number)[] = [
      now,
      now + this.#outboxMs,
      parent.id,
      encoded[0]!,
      parent.group ?? '',
      children.length,
    ];
    for (const [index, child] of children.entries())
      args.push(child.id, encoded[index + 1]!, child.availableAt, child.group ?? '');
    const reply = await this.#run('add-flow', queue, args);
    return Array.isArray(reply) ? reply.map(Number) : undefined;
  }

  async unclaim(queue: string, claims: StateDelivery[]): Promise<void> {
    if (claims.length === 0) return;
    await this.#run(
      'unclaim',
      queue,
      claims.flatMap(({ id, token }) => [id, token]),
    );
  }

  async confirm(queue: string, published: StateDelivery[]): Promise<void> {
    if (published.length === 0) return;
    await this.#run(
      'confirm',
      queue,
      published.flatMap(({ id, token }) => [id, token]),
    );
  }

  async exchange(queue: string, request: StateExchange): Promise<StateExchangeResult> {
    // As RedisProvider's: settlements over what Redis takes in one argument go in several calls
    // (the earlier ones judge no delivery), a completion over it alone is not stored.
    const { last: encoded, earlier, oversized } = await this.#argumentLimit.pack(request.settle, settleEntry);
    const stale: string[] = [];
    const parents: DeadLetteredParent[] = [];
    const published: StatePublish[] = [];
    for (const batch of earlier) {
      const reply = (await this.#run('exchange', queue, [
        request.now,
        request.leaseUntil,
        request.now + this.#outboxMs,
        batch,
        '[]',
      ])) as unknown[];
      const count = Number(reply[1] ?? 0);
      const parentCount = Number(reply[2] ?? 0);
      stale.push(...reply.slice(3, 3 + count).map(String));
      parents.push(...deadParentsIn(reply, 3 + count, parentCount));
      published.push(...publishes(reply, 3 + count + 3 * parentCount));
    }
    const reply = (await this.#run('exchange', queue, [
      request.now,
      request.leaseUntil,
      request.now + this.#outboxMs,
      encoded,
      request.deliveries.length === 0
        ? '[]'
        : JSON.stringify(request.deliveries.map(({ id, token, orphaned }) => [id, token, orphaned ? 1 : 0])),
    ])) as unknown[];
    // {verdict flags, refused count, parents count, refused ids…, parents…, takeover leases…,
    // publishes…} (see exchange.lua).
    const flags = Array.from(String(reply[0] ?? ''));
    const staleCount = Number(reply[1] ?? 0);
    const parentCount = Number(reply[2] ?? 0);
    parents.push(...deadParentsIn(reply, 3 + staleCount, parentCount));
    let next = 3 + staleCount + 3 * parentCount;
    const takeovers = flags.filter((flag) => flag === '3').length;
    const result: StateExchangeResult = {
      verdicts: flags.map((flag) => verdicts[flag] ?? 'drop'),
      publish: published.concat(publishes(reply, next + takeovers)),
    };
    if (staleCount > 0) stale.push(...reply.slice(3, 3 + staleCount).map(String));
    if (parents.length > 0) result.parentsDeadLettered = parents;
    if (stale.length > 0) result.stale = stale;
    if (oversized) result.oversized = oversized;
    if (takeovers > 0) {
      result.leases = flags.map((flag) => (flag === '3' ? String(reply[next++]) : undefined));
    }
    return result;
  }

  async extendLeases(queue: string, jobs: readonly LeasedJob[], leaseUntil: number): Promise<LeaseRenewal> {
    if (jobs.length === 0) return { cancelled: [], lost: [] };
    const args: (string | number)[] = [leaseUntil];
    for (const job of jobs) args.push(job.id, job.lease ?? '');
    const [cancelled, lost] = (await this.#run('extend', queue, args)) as [string[], string[]];
    return { cancelled, lost };
  }

  async release(
    queue: string,
    jobs: readonly LeasedJob[],
    now: number,
    stalled?: StalledRelease,
  ): Promise<StalledReleaseResult | undefined> {
    if (jobs.length === 0) return releaseResult(stalled, undefined);
    const args = releaseScriptHead(now, stalled);
    for (const job of jobs) args.push(job.id, job.lease ?? '');
    return releaseResult(stalled, (await this.#run('release', queue, args)) as number[]);
  }

  async maintain(
    queue: string,
    now: number,
    maxStalls: number,
    retention: RetentionPolicy,
  ): Promise<MaintenanceResult & { publish: StatePublish[] }> {
    const stallError = stalledErrorEntry(maxStalls, now);
    const reply = (await this.#run('maintain', queue, [
      now,
      maxStalls,
      retention.completedCount,
      retention.completedAgeMs,
      retention.deadCount,
      retention.deadAgeMs,
      JSON.stringify(stallError),
      now + this.#outboxMs,
    ])) as unknown[];
    const result: MaintenanceResult & { publish: StatePublish[] } = {
      recovered: Number(reply[0] ?? 0),
      deadLettered: Number(reply[1] ?? 0),
      removed: Number(reply[2] ?? 0),
      publish: publishes(reply, 4),
    };
    const parentsDeadLettered = Number(reply[3] ?? 0);
    if (parentsDeadLettered > 0) result.parentsDeadLettered = parentsDeadLettered;
    return result;
  }

  async getJob(queue: string, id: string, now: number): Promise<JobInfo | undefined> {
    const reply = (await this.#run('get-job', queue, [id])) as string[] | null;
    if (!reply) return undefined;
    const [raw, stored, availableAt, finishedAt, result, progress, terminalError] = reply as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const states: Record<string, JobState> = {
      a: 'active',
      w: 'waiting-children',
      c: 'completed',
      f: 'failed',
    };
    const state: JobState =
      stored === 'q'
        ? availableAt !== '' && Number(availableAt) > now
          ? 'delayed'
          : 'waiting'
        : states[stored]!;
    return jobInfoOf(raw, state, finishedAt, result, progress, terminalError);
  }

  async counts(queue: string, now: number): Promise<JobCounts> {
    return countsOf(await this.#run('counts', queue, [now]));
  }

  async pause(queue: string): Promise<void> {
    const prefix = this.#keyPrefix(queue);
    await this.#redis.hset(`${prefix}meta`, 'paused', '1');
    await this.#redis.publish(`${this.#storedPrefix(queue)}ev`, 'p');
  }

  async resume(queue: string): Promise<void> {
    const prefix = this.#keyPrefix(queue);
    await this.#redis.hdel(`${prefix}meta`, 'paused');
    await this.#redis.publish(`${this.#storedPrefix(queue)}ev`, 'r');
  }

  async groups(queue: string): Promise<string[]> {
    return this.#redis.smembers(`${this.#keyPrefix(queue)}groups`);
  }

  async isPaused(queue: string): Promise<boolean> {
    return (await this.#redis.hget(`${this.#keyPrefix(queue)}meta`, 'paused')) === '1';
  }

  async drain(queue: string, includeDelayed: boolean, now: number): Promise<number> {
    return Number(await this.#run('drain', queue, [now, includeDelayed ? 1 : 0]));
  }

  async setProgress(queue: string, id: string, progress: unknown): Promise<void> {
    await this.#run('progress', queue, [id, JSON.stringify(progress ?? null)]);
  }

  async cancel(queue: string, id: string, now: number): Promise<CancelResult & { publish: StatePublish[] }> {
    const error = cancelledErrorEntry(id, now);
    const reply = (await this.#run('cancel', queue, [
      now,
      id,
      JSON.stringify(error),
      now + this.#outboxMs,
    ])) as unknown[];
    const parents = Number(reply[1] ?? 0);
    const result: CancelResult & { publish: StatePublish[] } = {
      outcome: reply[0] as CancelOutcome,
      publish: publishes(reply, 2 + 3 * parents),
    };
    if (parents > 0) result.parentsDeadLettered = deadParentsIn(reply, 2, parents);
    return result;
  }

  #onMessage(channel: string, message: string): void {
    const listeners = this.#listeners.get(channel);
    if (!listeners) return;
    let event: StateEvent | undefined;
    if (message === 'p') event = { type: 'pause' };
    else if (message === 'r') event = { type: 'resume' };
    else if (message.startsWith('c:')) event = { type: 'cancel', id: message.slice(2) };
    else if (message.startsWith('g:')) event = { type: 'group', group: message.slice(2) };
    if (!event) return;
    for (const listener of listeners) listener(event);
  }

  async subscribe(queue: string, listener: (event: StateEvent) => void): Promise<() => void> {
    const channel = `${this.#storedPrefix(queue)}ev`;
    let listeners = this.#listeners.get(channel);
    if (!listeners) {
      listeners = new Set();
      this.#listeners.set(channel, listeners);
    }
    listeners.add(listener);
    const remove = () => {
      listeners.delete(listener);
    };
    if (this.#closed) return remove;
    if (!this.#subscriber) {
      const subscriber = duplicateConnection(this.#redis);
      subscriber.on('error', () => {});
      subscriber.on('message', (from: string, message: string) => this.#onMessage(from, message));
      this.#subscriber = subscriber;
    }
    let subscribed = this.#subscribed.get(channel);
    if (!subscribed) {
      subscribed = subscribeWhenReady(this.#subscriber, channel);
      this.#subscribed.set(channel, subscribed);
    }
    await Promise.race([subscribed, this.#whenClosed]);
    return remove;
  }

  async childrenResults(queue: string, parentId: string): Promise<ChildrenResults> {
    return readChildrenResults(this.#redis, `${this.#keyPrefix(queue)}deps:${parentId}`);
  }

  listDead(queue: string, offset: number, limit: number, now: number): Promise<JobInfo[]> {
    return listDeadIn(this.#redis, this.#keyPrefix(queue), offset, limit, (id) =>
      this.getJob(queue, id, now),
    );
  }

  async redrive(queue: string, ids: string[] | undefined, now: number): Promise<StatePublish[]> {
    const out: StatePublish[] = [];
    await forEachDeadPage(
      this.#redis,
      this.#keyPrefix(queue),
      ids,
      (id) => this.getJob(queue, id, now),
      async (failed) => {
        const args: (string | number)[] = [now + this.#outboxMs, now];
        for (const info of failed) args.push(info.id, encodeRecord(redrivenRecord(info, now)));
        out.push(...publishes((await this.#run('redrive', queue, args)) as unknown[], 0));
      },
    );
    return out;
  }

  async purgeDead(queue: string, ids: string[] | undefined): Promise<number> {
    return Number(await this.#run('purge-dead', queue, ids ?? []));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const subscriber = this.#subscriber;
    this.#subscriber = undefined;
    this.#rejectWhenClosed(new ClosedError('RedisJobStateStore'));
    if (subscriber) await closeSubscriber(subscriber, this.#closeTimeoutMs);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
