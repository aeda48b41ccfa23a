import type { Logger } from '@noa/core';
import type { RedisClient } from './l2/redis-client.js';
import type { RedisTier } from './l2/redis-tier.js';
import { TickBatcher } from './l2/tick-batcher.js';
import type { CacheMetrics } from './metrics.js';

/** A message on the invalidation bus. */
export interface BusMessage {
  /** Origin instance id (instances ignore their own messages). */
  o: string;
  /**
   * `set`/`del`: keys changed; `tag`: tags invalidated; `clear`: a key prefix cleared; `rel`:
   * lease released; `exp`/`exptag`: keys, or the keys of tags, marked stale (`expire`). A kind
   * an instance does not know (a newer release's) is ignored, so kinds can be added safely.
   */
  t: 'set' | 'del' | 'tag' | 'clear' | 'rel' | 'exp' | 'exptag';
  /** Keys, tags or the prefix, depending on `t`. */
  k: string[];
  /** Send time (ms since epoch), for the invalidation latency measurement. */
  at: number;
}

/**
 * L1 invalidation over Redis pub/sub: a write or delete on one instance evicts the key from
 * every other instance's L1, and wakes instances waiting for another's factory. Messages are
 * fire-and-forget: while Redis is down they are lost, so on reconnect each instance drops its
 * whole L1 (`onResync`) rather than serve values it may have missed invalidations for.
 * Messages of one event-loop turn are merged (one PUBLISH per type), since every message is
 * an idempotent eviction or wake-up and their order does not matter.
 */
export class InvalidationBus {
  readonly channel: string;
  readonly instanceId: string;
  readonly #tier: RedisTier;
  readonly #subscriber: RedisClient;
  readonly #onMessage: (message: BusMessage) => void;
  readonly #onResync: () => void;
  readonly #metrics: CacheMetrics;
  readonly #logger: Logger;
  readonly #outbox = new TickBatcher<{ t: BusMessage['t']; k: string[] }, undefined>((items) =>
    this.#send(items),
  );
  #lostConnection = false;
  #closed = false;
  readonly ready: Promise<void>;

  constructor(options: {
    tier: RedisTier;
    channel: string;
    instanceId: string;
    onMessage: (message: BusMessage) => void;
    onResync: () => void;
    metrics: CacheMetrics;
    logger: Logger;
  }) {
    this.#tier = options.tier;
    this.channel = options.channel;
    this.instanceId = options.instanceId;
    this.#onMessage = options.onMessage;
    this.#onResync = options.onResync;
    this.#metrics = options.metrics;
    this.#logger = options.logger;
    this.#subscriber = options.tier.client.duplicate();
    this.#subscriber.on('error', (error: Error) => {
      this.#logger.debug('invalidation bus connection error', { error: error.message });
    });
    this.#subscriber.on('close', () => {
      if (!this.#closed) this.#lostConnection = true;
    });
    this.#subscriber.on('ready', () => {
      if (this.#lostConnection) {
        this.#lostConnection = false;
        this.#logger.info('invalidation bus reconnected; dropping L1 (invalidations may have been missed)');
        this.#onResync();
      }
    });
    this.#subscriber.on('message', (_channel: string, raw: string) => this.#receive(raw));
    this.ready = this.#subscriber.subscribe(this.channel).then(
      () => undefined,
      (error: unknown) => {
        this.#logger.warn('invalidation bus could not subscribe', { error: String(error) });
      },
    );
  }

  /** Publishes a message from this instance (dropped when Redis is unavailable). */
  async publish(type: BusMessage['t'], keys: string[]): Promise<void> {
    await this.#outbox.add({ t: type, k: keys });
  }

  async #send(items: { t: BusMessage['t']; k: string[] }[]): Promise<undefined[]> {
    const byType = new Map<BusMessage['t'], string[]>();
    for (const { t, k } of items) {
      const keys = byType.get(t);
      if (keys) keys.push(...k);
      else byType.set(t, [...k]);
    }
    await Promise.all(
      [...byType].map(async ([t, k]) => {
        const message: BusMessage = { o: this.instanceId, t, k, at: Date.now() };
        if (await this.#tier.publish(this.channel, JSON.stringify(message))) this.#metrics.bus('sent');
      }),
    );
    return items.map(() => undefined);
  }

  /** Unsubscribes and closes the subscriber connection. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#subscriber.disconnect();
  }

  #receive(raw: string): void {
    let message: BusMessage;
    try {
      message = JSON.parse(raw) as BusMessage;
    } catch {
      return;
    }
    if (message.o === this.instanceId) return;
    this.#metrics.bus('received');
    this.#onMessage(message);
  }
}
