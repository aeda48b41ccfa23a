import type { IoRedisClient } from './ioredis-client.js';

/** Callbacks per client, behind one `close` listener each (many caches may share a client). */
const callbacks = new WeakMap<IoRedisClient, { listener: () => void; set: Set<() => void> }>();

/**
 * Calls `callback` whenever `client`'s connection closes; returns the unsubscribe function.
 * All caches on one client share a single listener, so a process with many caches on one
 * connection does not trip Node's MaxListeners warning.
 */
export function onConnectionClose(client: IoRedisClient, callback: () => void): () => void {
  let entry = callbacks.get(client);
  if (!entry) {
    const set = new Set<() => void>();
    const listener = () => {
      for (const each of [...set]) each();
    };
    entry = { listener, set };
    callbacks.set(client, entry);
    client.on('close', listener);
  }
  const { set } = entry;
  const subscription = () => callback();
  set.add(subscription);
  return () => {
    set.delete(subscription);
    if (set.size === 0 && callbacks.get(client) === entry) {
      callbacks.delete(client);
      client.off('close', entry.listener);
    }
  };
}
