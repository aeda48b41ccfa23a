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
