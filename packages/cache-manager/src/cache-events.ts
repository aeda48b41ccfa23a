import type { Logger } from '@noa/core';
import type { BusMessage } from './bus-message.js';

/** Why a stale value was served (the same labels as the `stale_served` metric). */
export type StaleReason = 'factory_error' | 'soft_timeout' | 'hard_timeout' | 'lock_timeout';

/**
 * The events of a cache and what each carries. Keys are full keys: `:<namespace>::<key>` for a
 * namespaced cache or view (`:a:b::<key>` nested; a root key as given, `::<key>` when it starts
 * with `:`), and a clear's prefix is the namespace path (`:a:`, `:a:b:`); events are cache-wide,
 * views share them. The names are this package's own: cache-manager v7 shares `set` and
 * `clear` (it has `del`, no hit/miss); bentocache's are `cache:`-prefixed (`cache:hit`,
 * `cache:written`…). README "Events" maps them.
 */
export interface CacheEventMap {
  /** A read (`get`, `getMany`, `has`, `getOrSet`) found a fresh value, in `tier`. */
  hit: { key: string; tier: 'l1' | 'l2' };
  /** A read found no fresh value in any tier (`getOrSet` then computes it: once per flight). */
  miss: { key: string };
  /** `getOrSet` served a value past its freshness, in grace. */
  stale: { key: string; reason: StaleReason };
  /** A value was written (`set`, `setMany`, `warm`, or a factory's result being cached). */
  set: { key: string };
  /** A key was deleted (`delete`, `deleteMany`, or found under a tag by `deleteByTag`). */
  delete: { key: string };
  /**
   * A key was marked stale (`expire`, `expireMany`, or found under a tag by `expireByTag`):
   * kept for its grace period, recomputed by the next `getOrSet`.
   */
  expire: { key: string };
  /** `clear()` removed every key under `prefix` (empty: the whole cache). */
  clear: { prefix: string };
  /** A factory threw or rejected (the error as thrown, before `FactoryError` wraps it). */
  'factory-error': { key: string; error: unknown };
  /** An invalidation from another instance arrived over the bus and was applied. */
  invalidation: Readonly<BusMessage>;
}

/** The name of a cache event. */
export type CacheEventName = keyof CacheEventMap;

/** Every event name, to refuse a misspelt one at subscription instead of never calling it. */
export const cacheEventNames: ReadonlySet<string> = new Set<CacheEventName>([
  'hit',
  'miss',
  'stale',
  'set',
  'delete',
  'expire',
  'clear',
  'factory-error',
  'invalidation',
]);

/** A listener of one cache event. */
export type CacheEventListener<E extends CacheEventName> = (event: CacheEventMap[E]) => void;

type ListenerLists = { [E in CacheEventName]?: readonly CacheEventListener<E>[] };

/**
 * The listeners of a cache. Each event's list is undefined while nobody listens, so an
 * emitting site costs one property read and builds no payload (`if (events.lists.hit)`).
 * Lists are replaced, never mutated, so a listener may unsubscribe while an event is emitted.
 */
export class CacheEvents {
  // Every field present from the start: a stable shape keeps the check on the hit path a
  // plain field load (a missing property would be looked up along the prototype chain).
  readonly lists: ListenerLists = {
    hit: undefined,
    miss: undefined,
    stale: undefined,
    set: undefined,
    delete: undefined,
    expire: undefined,
    clear: undefined,
    'factory-error': undefined,
    invalidation: undefined,
  };
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  on<E extends CacheEventName>(event: E, listener: CacheEventListener<E>): () => void {
    // Wrapped so that the same function registered twice gets two subscriptions.
    const subscription: CacheEventListener<E> = (payload) => listener(payload);
    const lists = this.lists as Record<E, readonly CacheEventListener<E>[] | undefined>;
    lists[event] = [...(lists[event] ?? []), subscription];
    return () => {
      const remaining = (lists[event] ?? []).filter((entry) => entry !== subscription);
      lists[event] = remaining.length > 0 ? remaining : undefined;
    };
  }

  /**
   * Calls `listeners` with `payload`; a listener that throws, or returns a promise that
   * rejects, is logged and never breaks the cache call.
   */
  emit<E extends CacheEventName>(
    event: E,
    listeners: readonly CacheEventListener<E>[],
    payload: CacheEventMap[E],
  ): void {
    for (const listener of listeners) {
      try {
        // Typed `=> void`, a listener may still be an async function: its rejection, out of
        // the try's reach, would be unhandled, which ends a Node process by default.
        const returned: unknown = listener(payload);
        if (isThenable(returned)) returned.then(undefined, (error) => this.#listenerThrew(event, error));
      } catch (error) {
        this.#listenerThrew(event, error);
      }
    }
  }

  #listenerThrew(event: CacheEventName, error: unknown): void {
    this.#logger.warn('a cache event listener threw', { event, error: String(error) });
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then === 'function';
}
