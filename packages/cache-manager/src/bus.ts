import { type Logger, reviveSentinelClient } from '@noa/core';
import type { Cluster } from 'ioredis';
import type { BusMessage } from './bus-message.js';
import { failedAttempts, type IoRedisClient, isCluster } from './l2/ioredis-client.js';
import type { LeaseResult, RedisTier } from './l2/redis-tier.js';
import { TickBatcher } from './l2/tick-batcher.js';
import type { CacheMetrics } from './metrics.js';

/** A message waiting in the outbox for the end of the event-loop turn. */
interface OutgoingMessage {
  t: BusMessage['t'];
  k: string[];
  /** `rel`: released because the factory failed (see `BusMessage.f`). */
  failed: boolean;
  /** `set`: the ids of the writes, per key of `k` (see `BusMessage.v`). */
  writeIds: readonly number[] | undefined;
}

/** How often an instance that lost invalidations retries telling the others (ms). */
const RESYNC_RETRY_MS = 500;

/** Past this many lost keys (or tags, prefixes), they are replaced by one root `clear`. */
const MAX_LOST_KEYS = 10_000;

/**
 * How long the instance that takes the root-clear lease waits before sending the root clear,
 * so that the instances recovering from the same outage meanwhile need not send their own.
 */
const ROOT_CLEAR_COALESCE_MS = 1_000;

/** Cache-wide lease name (`<prefix>__root-clear`) of the root clear after lost invalidations. */
const ROOT_CLEAR_LEASE = 'root-clear';

/** How long a Cluster bus waits before subscribing through another node (ms). */
const RESUBSCRIBE_DELAY_MS = 100;

/**
 * L1 invalidation over Redis pub/sub: a write or delete on one instance evicts the key from
 * every other instance's L1, and wakes instances waiting for another's factory. Messages are
 * fire-and-forget: while Redis is down they are lost, so on reconnect each instance drops its
 * whole L1 (`onResync`) rather than serve values it may have missed invalidations for.
 * Redis can also be out of reach for one instance only (its calls time out, its breaker is
 * open) while the others' connections never drop: that instance's writes then reach its own
 * L1 and nothing else. Once it reaches Redis again it publishes the lost messages again and
 * drops its own copies of the keys it wrote (see {@link InvalidationBus.missed}), so every
 * instance rereads those keys from L2.
 * Messages of one event-loop turn are merged (one PUBLISH per type), since every message is
 * an idempotent eviction or wake-up and their order does not matter.
 */
export class InvalidationBus {
  readonly channel: string;
  readonly instanceId: string;
  readonly #tier: RedisTier;
  #subscriber: IoRedisClient | undefined;
  /** Stops {@link reviveSentinelClient}'s watch of the subscriber (a Sentinel client's duplicate). */
  #stopReviving: (() => void) | undefined;
  #resubscribeTimer: NodeJS.Timeout | undefined;
  /** Ends a wait for the Cluster to be ready (see `#subscribeOnCluster`). */
  #stopWaitingForCluster: (() => void) | undefined;
  readonly #onMessage: (message: BusMessage) => void;
  readonly #onResync: (keys?: readonly string[]) => void;
  readonly #onConnectionLost: () => void;
  readonly #metrics: CacheMetrics;
  readonly #logger: Logger;
  readonly #outbox = new TickBatcher<OutgoingMessage, undefined>((items) => this.#send(items));
  #lostConnection = false;
  /** A SUBSCRIBE of the bus has taken effect once. */
  #subscribed = false;
  /**
   * Ends the wait of {@link ready} (see `#startWithin`); undefined once it ended. `unanswered`
   * (the default): Redis did not answer the SUBSCRIBE; false: it refused it.
   */
  #endStartWait: ((unanswered?: boolean) => void) | undefined;
  #closed = false;
  /** Invalidations of this instance that may not have reached Redis or the others, by kind. */
  #lost = new Map<BusMessage['t'], Set<string>>();
  #lostCount = 0;
  /** Too many were lost to send again one by one: a root `clear` replaces them. */
  #lostTooMany = false;
  #resyncTimer: NodeJS.Timeout | undefined;
  /** Set while this instance waits for another's root clear (see `#resyncWithRootClear`). */
  #rootClearTimer: NodeJS.Timeout | undefined;
  /**
   * Resolves once the bus is subscribed or, while Redis does not answer, once its connection
   * attempt failed or `startTimeoutMs` passed; the bus then subscribes when Redis answers and
   * drops L1 as after a reconnect (see `#startWithin`). Never rejects.
   */
  readonly ready: Promise<void>;

  constructor(options: {
    tier: RedisTier;
    channel: string;
    instanceId: string;
    onMessage: (message: BusMessage) => void;
    /** Drops `keys` from L1, or without them all of it (and supersedes every factory run). */
    onResync: (keys?: readonly string[]) => void;
    /**
     * The subscription connection closed: messages are lost from now until `onResync`. A
     * factory run that ends before then may have missed the one that changed its key.
     */
    onConnectionLost: () => void;
    /** How long {@link ready} waits for the first SUBSCRIBE (the cache's `operationTimeoutMs`). */
    startTimeoutMs: number;
    metrics: CacheMetrics;
    logger: Logger;
  }) {
    this.#tier = options.tier;
    this.channel = options.channel;
    this.instanceId = options.instanceId;
    this.#onMessage = options.onMessage;
    this.#onResync = options.onResync;
    this.#onConnectionLost = options.onConnectionLost;
    this.#metrics = options.metrics;
    this.#logger = options.logger;
    const client = options.tier.client;
    this.ready = this.#startWithin(options.startTimeoutMs);
    if (isCluster(client)) void this.#subscribeOnCluster(client);
    else void this.#subscribe(client.duplicate({ autoResubscribe: false }));
  }

  /**
   * The wait of {@link ready}: until the first SUBSCRIBE takes effect, at most `timeoutMs`, and
   * no longer once a connection attempt of the bus failed. Awaiting the SUBSCRIBE alone,
   * `ready()` waited as long as Redis did not answer: for good on a frozen server (its
   * connection accepted, its ready check unanswered), and as long as ioredis kept the command
   * queued on a stopped one (forever with `maxRetriesPerRequest: null`). A bus not subscribed
   * by then counts as one whose connection closed: L1 is dropped once its SUBSCRIBE takes
   * effect (a value read meanwhile may have missed an invalidation), and factory runs are
   * suspect until then, as after any reconnect.
   */
  #startWithin(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.#endStartWait?.(), timeoutMs);
      timer.unref();
      this.#endStartWait = (unanswered = true) => {
        this.#endStartWait = undefined;
        clearTimeout(timer);
        if (unanswered && !this.#subscribed && !this.#closed) {
          this.#logger.warn(
            'invalidation bus not subscribed within operationTimeoutMs (Redis slow or unreachable); L1 is dropped once it is',
          );
          if (!this.#lostConnection) {
            this.#lostConnection = true;
            this.#onConnectionLost();
          }
        }
        resolve();
      };
    });
  }

  /**
   * Subscribes `subscriber` (a connection of its own) to the channel. Once a connection of the
   * bus has closed, L1 is dropped when the next one's SUBSCRIBE has taken effect, not when it
   * is ready: a value read from L2 in the round trip between the two would miss the message
   * of a write published meanwhile and stay in L1. The connection therefore does not
   * resubscribe by itself (`autoResubscribe: false`); the bus does, and knows when it is done.
   */
  #subscribe(subscriber: IoRedisClient): Promise<void> {
    this.#subscriber = subscriber;
    // A duplicate of a Sentinel client has its failover detector, and the race that ends it.
    if (!isCluster(subscriber)) {
      this.#stopReviving?.();
      this.#stopReviving = reviveSentinelClient(subscriber, () =>
        this.#logger.warn(
          'ioredis ended the invalidation bus connection in a Sentinel failover (the switch was announced while it looked up the master); reconnecting it',
        ),
      );
    }
    subscriber.on('error', (error: Error) => {
      this.#logger.debug('invalidation bus connection error', { error: error.message });
    });
    subscriber.on('close', () => {
      if (this.#closed) return;
      this.#lostConnection = true;
      this.#onConnectionLost();
      // Not subscribed yet: the attempt failed (or the connection dropped), ready() waits no more.
      this.#endStartWait?.();
    });
    subscriber.on('ready', () => {
      if (this.#lostConnection) void this.#resubscribe(subscriber);
    });
    subscriber.on('message', (_channel: string, raw: string) => this.#receive(raw));
    return subscriber.subscribe(this.channel).then(
      () => {
        this.#subscribed = true;
        this.#endStartWait?.();
        // Taken effect after a close (or past ready()'s wait): what L1 holds may be stale.
        this.#resynced();
      },
      (error: unknown) => {
        this.#logger.warn('invalidation bus could not subscribe', { error: String(error) });
        // Refused with no connection lost (an ACL without SUBSCRIBE): no later SUBSCRIBE will
        // take effect to end a resync, so the bus is not counted as waiting for one, as before.
        if (!this.#lostConnection) this.#endStartWait?.(false);
      },
    );
  }

  /**
   * Subscribes a reconnected connection again, then drops L1 (and supersedes the factory
   * runs): everything cached before this point may have missed an invalidation. A SUBSCRIBE
   * that fails (the connection dropped again) leaves that to the next reconnect.
   */
  async #resubscribe(subscriber: IoRedisClient): Promise<void> {
    try {
      await subscriber.subscribe(this.channel);
    } catch (error) {
      this.#logger.debug('invalidation bus could not subscribe again', { error: String(error) });
      return;
    }
    this.#resynced();
  }

  /** A SUBSCRIBE took effect: after a lost connection, L1 is dropped (see {@link awaitingResync}). */
  #resynced(): void {
    if (this.#closed || !this.#lostConnection) return;
    this.#lostConnection = false;
    this.#logger.info('invalidation bus reconnected; dropping L1 (invalidations may have been missed)');
    this.#onResync();
  }

  /**
   * On a Cluster the bus subscribes through a plain connection to one master (a classic
   * PUBLISH reaches every node's subscribers), not through `cluster.duplicate()`: ioredis moves
   * a Cluster's subscription to another node when its connection ends without any event on
   * the Cluster, so messages published meanwhile would be lost unnoticed. This connection does
   * not reconnect by itself; when it ends, the bus subscribes through another master and,
   * once that connection is ready, drops L1 as after any reconnect. It does the same when the
   * node leaves the Cluster (ioredis emits `-node` for it): its process may stay up, so the
   * connection never ends, yet a node removed from the Cluster no longer gets the Cluster's
   * PUBLISH messages. A node that became a replica still gets them, so the bus stays on it.
   */
  async #subscribeOnCluster(cluster: Cluster): Promise<void> {
    if (this.#closed) return;
    if (cluster.status !== 'ready') {
      // A Cluster that has failed to connect since it was last ready (or fails now) ends the
      // wait of ready(); this one goes on until the Cluster is ready or the bus closes.
      const failed = () => this.#endStartWait?.();
      if (failedAttempts(cluster) > 0) failed();
      await new Promise<void>((resolve) => {
        const done = () => {
          cluster.off('ready', done);
          cluster.off('close', failed);
          this.#stopWaitingForCluster = undefined;
          resolve();
        };
        this.#stopWaitingForCluster = done;
        cluster.once('ready', done);
        cluster.on('close', failed);
      });
      if (this.#closed) return;
    }
    const masters = cluster.nodes('master');
    const node = masters[Math.floor(Math.random() * masters.length)];
    if (node === undefined) {
      this.#resubscribeLater(cluster);
      return;
    }
    const subscriber = node.duplicate({
      lazyConnect: false,
      retryStrategy: () => null,
      enableReadyCheck: true,
      autoResubscribe: false,
    });
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      cluster.off('-node', onNodeRemoved);
      if (this.#closed) return;
      this.#lostConnection = true;
      this.#onConnectionLost();
      subscriber.disconnect();
      this.#resubscribeLater(cluster);
    };
    const onNodeRemoved = (removed: unknown) => {
      if (removed === node) leave();
    };
    subscriber.once('end', leave);
    cluster.on('-node', onNodeRemoved);
    await this.#subscribe(subscriber);
  }

  #resubscribeLater(cluster: Cluster): void {
    if (this.#closed || this.#resubscribeTimer !== undefined) return;
    this.#resubscribeTimer = setTimeout(() => {
      this.#resubscribeTimer = undefined;
      void this.#subscribeOnCluster(cluster);
    }, RESUBSCRIBE_DELAY_MS);
    this.#resubscribeTimer.unref();
  }

  /**
   * The bus connection closed and its new subscription has not taken effect yet: whatever L1
   * holds now is dropped when it does (`onResync`), so L1 may hold a value it could not check.
   */
  get awaitingResync(): boolean {
    return this.#lostConnection && !this.#closed;
  }

  /**
   * Publishes a message from this instance (dropped when Redis is unavailable). `holderFailed`
   * (with `rel`): the lease was released because the factory failed. `writeIds` (with `set`):
   * the ids of the writes, one per key.
   */
  async publish(
    type: BusMessage['t'],
    keys: string[],
    flags: { holderFailed?: boolean; writeIds?: readonly number[] } = {},
  ): Promise<void> {
    await this.#outbox.add({
      t: type,
      k: keys,
      failed: flags.holderFailed === true,
      writeIds: flags.writeIds,
    });
  }

  async #send(items: OutgoingMessage[]): Promise<undefined[]> {
    const byType = new Map<BusMessage['t'], { keys: string[]; failed: string[]; ids: (number | null)[] }>();
    let withIds = false;
    for (const { t, k, failed, writeIds } of items) {
      let group = byType.get(t);
      if (!group) {
        group = { keys: [], failed: [], ids: [] };
        byType.set(t, group);
      }
      // Not `push(...k)`: a `deleteMany` or `expireMany` of ~125,000 keys overflowed the stack
      // with its arguments, and its message was neither sent nor recorded as lost.
      for (let index = 0; index < k.length; index += 1) {
        group.keys.push(k[index]!);
        if (failed) group.failed.push(k[index]!);
        group.ids.push(writeIds?.[index] ?? null);
      }
      if (writeIds) withIds = true;
    }
    await Promise.all(
      [...byType].map(async ([t, { keys: k, failed, ids }]) => {
        const message: BusMessage = { o: this.instanceId, t, k, at: Date.now() };
        if (failed.length > 0) message.f = failed;
        if (withIds && t === 'set') message.v = ids;
        let sent = false;
        try {
          sent = await this.#tier.publish(this.channel, JSON.stringify(message));
        } finally {
          // A lost `rel` only makes waiters poll; any other kind leaves some L1 out of date.
          if (sent) this.#metrics.bus('sent');
          else if (t !== 'rel') this.missed(t, k);
        }
      }),
    );
    return items.map(() => undefined);
  }

  /**
   * Records that an invalidation of this instance may not have reached Redis or the other
   * instances (its publish, or the L2 write behind a `set`, failed or was skipped). Every
   * {@link RESYNC_RETRY_MS} the lost messages are published again until they get through;
   * then this instance drops its own L1 copies of the keys it wrote, which L2 may not have.
   * Every instance then rereads those keys from L2: the lost writes stay lost, but no two
   * instances keep serving different values. Past {@link MAX_LOST_KEYS} every L1 is dropped
   * instead, by one root `clear` per outage across instances (see `#resyncWithRootClear`).
   */
  missed(type: BusMessage['t'], keys: readonly string[]): void {
    if (this.#closed) return;
    if (!this.#lostTooMany) {
      let lost = this.#lost.get(type);
      if (!lost) {
        lost = new Set();
        this.#lost.set(type, lost);
      }
      for (const key of keys) {
        if (lost.has(key)) continue;
        lost.add(key);
        this.#lostCount += 1;
      }
      if (this.#lostCount > MAX_LOST_KEYS) {
        this.#lostTooMany = true;
        this.#lost.clear();
        this.#lostCount = 0;
      }
    }
    if (this.#resyncTimer !== undefined) return;
    this.#resyncTimer = setTimeout(() => {
      this.#resyncTimer = undefined;
      void this.#resync();
    }, RESYNC_RETRY_MS);
    this.#resyncTimer.unref();
  }

  async #resync(): Promise<void> {
    if (this.#closed) return;
    if (this.#lostTooMany) {
      await this.#resyncWithRootClear();
      return;
    }
    const messages: [BusMessage['t'], string[]][] = [...this.#lost].map(([type, keys]) => [type, [...keys]]);
    const written = [...(this.#lost.get('set') ?? [])];
    this.#lost = new Map();
    this.#lostCount = 0;
    for (const [t, k] of messages) {
      const message: BusMessage = { o: this.instanceId, t, k, at: Date.now() };
      let sent = false;
      try {
        sent = await this.#tier.publish(this.channel, JSON.stringify(message));
      } catch {
        // `onBackendError: 'throw'`: Redis is still out of reach, as with a false.
      }
      if (!sent) {
        // All wait for the next try (evictions sent twice do no harm), with what is lost meanwhile.
        for (const [type, keys] of messages) this.missed(type, keys);
        return;
      }
      this.#metrics.bus('sent');
    }
    this.#logger.info('redis reachable again; lost invalidations sent again', {
      messages: messages.length,
    });
    this.#onResync(written);
  }

  /**
   * Too many invalidations were lost to name them: every L1 must be dropped. After an outage
   * shared by many instances, each would send a root clear, and every instance would drop its
   * L1 once per other instance, refilling it from L2 in between. So the instances coordinate
   * through a lease: the first to recover takes it, drops its own L1, waits
   * {@link ROOT_CLEAR_COALESCE_MS}, frees the lease and then sends one root clear. Another
   * instance that finds the lease taken drops only its own L1: its lost writes reached Redis,
   * if they ever do, before its attempt (one connection, in order), which came before the
   * holder freed the lease and so before the holder's clear. It then waits for a root clear
   * and tries again if none comes (a holder that died before sending it).
   */
  async #resyncWithRootClear(): Promise<void> {
    this.#lostTooMany = false;
    // The instance id, the same on every try: an earlier try that timed out may hold the lease.
    const token = this.instanceId;
    let lease: LeaseResult = 'unavailable';
    try {
      lease = await this.#tier.acquireCacheLease(ROOT_CLEAR_LEASE, token, 2 * ROOT_CLEAR_COALESCE_MS);
    } catch {
      // `onBackendError: 'throw'`: Redis is out of reach again, as with 'unavailable'.
    }
    if (lease === 'unavailable') {
      this.#missedTooMany();
      return;
    }
    this.#onResync();
    if (lease === 'busy') {
      this.#awaitRootClear();
      return;
    }
    await new Promise<void>((resolve) => setTimeout(resolve, ROOT_CLEAR_COALESCE_MS).unref());
    if (this.#closed) return;
    // Not ours any more (we waited past its expiry) or Redis out of reach: the clear goes out
    // all the same, or fails and is tried again.
    await this.#tier.releaseCacheLease(ROOT_CLEAR_LEASE, token).catch(() => false);
    const message: BusMessage = { o: this.instanceId, t: 'clear', k: [''], at: Date.now() };
    let sent = false;
    try {
      sent = await this.#tier.publish(this.channel, JSON.stringify(message));
    } catch {
      // `onBackendError: 'throw'`: Redis is out of reach again, as with a false.
    }
    if (!sent) {
      this.#missedTooMany();
      return;
    }
    this.#metrics.bus('sent');
    this.#logger.info('redis reachable again; too many invalidations lost, one root clear sent');
  }

  /** Past the lease and the holder's wait, no root clear came: this instance tries again. */
  #awaitRootClear(): void {
    clearTimeout(this.#rootClearTimer);
    this.#rootClearTimer = setTimeout(() => {
      this.#rootClearTimer = undefined;
      this.#missedTooMany();
    }, 3 * ROOT_CLEAR_COALESCE_MS);
    this.#rootClearTimer.unref();
  }

  #missedTooMany(): void {
    this.#lostTooMany = true;
    this.missed('clear', ['']);
  }

  /** Unsubscribes and closes the subscriber connection. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#resyncTimer);
    clearTimeout(this.#rootClearTimer);
    clearTimeout(this.#resubscribeTimer);
    this.#stopWaitingForCluster?.();
    this.#endStartWait?.();
    this.#stopReviving?.();
    this.#subscriber?.disconnect();
  }

  #receive(raw: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      return;
    }
    // The channel is a plain Redis channel anyone may PUBLISH to: a message of another shape
    // is dropped here, as unparsable JSON is. Applied as it came (`null`, no `k`), it threw
    // a TypeError inside ioredis's 'message' event: an uncaught exception.
    if (!isBusMessage(parsed)) {
      this.#logger.debug('invalidation bus message of an unknown shape dropped', { raw: raw.slice(0, 200) });
      return;
    }
    const message = parsed;
    if (message.o === this.instanceId) return;
    if (
      this.#rootClearTimer !== undefined &&
      message.t === 'clear' &&
      Array.isArray(message.k) &&
      message.k.includes('')
    ) {
      clearTimeout(this.#rootClearTimer);
      this.#rootClearTimer = undefined;
    }
    this.#metrics.bus('received');
    this.#onMessage(message);
  }
}

/** The shape every release's messages have (a kind it does not know is ignored later, not here). */
function isBusMessage(value: unknown): value is BusMessage {
  if (typeof value !== 'object' || value === null) return false;
  const { o, t, k, f } = value as Partial<Record<keyof BusMessage, unknown>>;
  return (
    typeof o === 'string' &&
    typeof t === 'string' &&
    isStringArray(k) &&
    (f === undefined || isStringArray(f))
  );
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}
