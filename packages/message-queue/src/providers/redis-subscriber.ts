import { withDeadline } from '@noa/core';
import type { Cluster, Redis } from 'ioredis';

/**
 * Ends a pub/sub connection without waiting on an unreachable server. QUIT is only sent to a
 * connected client: a reconnecting one queues it behind its pending SUBSCRIBE, so it would
 * never be answered (the hang BullMQ fixed the same way in taskforcesh/bullmq#4676). A server
 * that is connected but does not answer (frozen, partitioned) gets `timeoutMs`, then the
 * socket is dropped.
 */
export async function closeSubscriber(subscriber: Redis | Cluster, timeoutMs: number): Promise<void> {
  if (subscriber.status !== 'ready') {
    subscriber.disconnect();
    return;
  }
  await withDeadline(subscriber.quit(), timeoutMs, 'Redis QUIT').catch(() => subscriber.disconnect());
}

/**
 * A new connection like `connection` (same options, or the same cluster nodes) for pub/sub.
 * ioredis 6 makes `Redis` and `Cluster` generic over their reply mapping, so `duplicate()` on the
 * union is no longer callable: each side is called on its own type.
 */
export function duplicateConnection(connection: Redis | Cluster): Redis | Cluster {
  return (connection as { isCluster?: boolean }).isCluster === true
    ? (connection as Cluster).duplicate()
    : (connection as Redis).duplicate();
}

/** The last SUBSCRIBE sent on each pub/sub connection: the next one waits for it. */
const lastSubscription = new WeakMap<Redis | Cluster, Promise<void>>();

/**
 * SUBSCRIBE on a pub/sub connection once it is ready, one channel after the other. ioredis
 * writes SUBSCRIBE at once during its handshake (the command may run while Redis loads its
 * data), which puts the connection in subscriber mode before its INFO ready check: Redis
 * refuses the check, and the subscription fails with it (redis/ioredis#2037). That happens when
 * a second channel is subscribed a few ms after the first opened the connection (many queues
 * starting at once). The first SUBSCRIBE, sent before the socket opens, waits in the offline
 * queue, which ioredis flushes after the check; each next one waits for the one before, so it
 * goes out once the connection is ready. A Cluster opens its pub/sub connection (hidden inside
 * it) on the first SUBSCRIBE: only the wait for the one before covers it. A standalone
 * connection that reconnects meanwhile is waited for too (`connect`: in its handshake).
 */
export function subscribeWhenReady(subscriber: Redis | Cluster, channel: string): Promise<void> {
  const previous = lastSubscription.get(subscriber) ?? Promise.resolve();
  const subscribed = previous
    .catch(() => undefined)
    .then(async () => {
      if (subscriber.status === 'connect') await untilReady(subscriber);
      await subscriber.subscribe(channel);
    });
  lastSubscription.set(subscriber, subscribed);
  return subscribed;
}

function untilReady(subscriber: Redis | Cluster): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const ready = () => {
      subscriber.off('end', ended);
      resolve();
    };
    const ended = () => {
      subscriber.off('ready', ready);
      reject(new Error('the Redis pub/sub connection ended before it was ready'));
    };
    subscriber.once('ready', ready);
    subscriber.once('end', ended);
  });
}
