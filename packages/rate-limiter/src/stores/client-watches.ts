import { reviveSentinelClient } from '@noa/core';
import type { Cluster, Redis } from 'ioredis';

/**
 * What the RedisStores on one ioredis client watch on it, shared by them: one set of listeners
 * per client, however many stores are made on it (a limiter per tenant or per route, each with its
 * own store). A set per store put Node's MaxListenersExceededWarning on the eleventh store, and a
 * store never closed (a limiter's `close()` leaves open a store it was given) kept its set on the
 * client for as long as the client lived.
 */

interface SentinelWatch {
  /** What each store open on the client does on a revival (it logs), by the store's token. */
  readonly onRevive: Map<object, () => void>;
  readonly stop: () => void;
}

const sentinelWatches = new WeakMap<Redis, SentinelWatch>();

/** Releases the share of a store dropped without `close()`, so that it does not outlive it. */
const releaseDropped = new FinalizationRegistry<() => void>((release) => release());

/**
 * Core's `reviveSentinelClient` on `client` (a Sentinel client with the failover detector; others
 * need no watch), started by the first store on it and stopped when the last one closes;
 * `onRevive` runs at each revival while `store` is open. Returns the store's release, for its
 * `close()`.
 */
export function watchSentinelClient(client: Redis, store: object, onRevive: () => void): () => void {
  const { sentinels, failoverDetector } = client.options;
  if (!Array.isArray(sentinels) || sentinels.length === 0 || failoverDetector !== true) return () => {};
  let watch = sentinelWatches.get(client);
  if (watch === undefined) {
    const callbacks = new Map<object, () => void>();
    const stop = reviveSentinelClient(client, () => {
      for (const each of callbacks.values()) each();
    });
    watch = { onRevive: callbacks, stop };
    sentinelWatches.set(client, watch);
  }
  const own = watch;
  const token = {};
  own.onRevive.set(token, onRevive);
  const release = () => {
    if (!own.onRevive.delete(token) || own.onRevive.size > 0) return;
    own.stop();
    if (sentinelWatches.get(client) === own) sentinelWatches.delete(client);
  };
  releaseDropped.register(store, release, token);
  return () => {
    releaseDropped.unregister(token);
    release();
  };
}

const nextReadies = new WeakMap<Redis | Cluster, Promise<void>>();

/** Resolves at `client`'s next `ready` event: one listener for every store waiting for it. */
export function nextReady(client: Redis | Cluster): Promise<void> {
  let ready = nextReadies.get(client);
  if (ready === undefined) {
    ready = new Promise<void>((resolve) => {
      client.once('ready', () => {
        nextReadies.delete(client);
        resolve();
      });
    });
    nextReadies.set(client, ready);
  }
  return ready;
}
