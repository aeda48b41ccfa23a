import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import {
  jobOptionsSchema,
  MemoryProvider,
  maxDelayMs,
  maxPriority,
  Queue,
  queueOptionsSchema,
  retentionSchema,
  workerOptionsSchema,
} from '../src/index.js';
import { rabbitMqProviderOptionsSchema } from '../src/rabbitmq.js';
import { redisJobStateStoreOptionsSchema, redisProviderOptionsSchema } from '../src/redis.js';

// Every default the README's option tables state, read from the schemas that apply them (the
// README is the contract: a default changed here must be changed there).
describe('the defaults the README states', () => {
  it('job options: priority 0, delay 0, attempts 3, exponential backoff 1 s capped at 1 h with jitter 0.5, removeOnComplete false', () => {
    expect(jobOptionsSchema.parse({})).toMatchObject({
      priority: 0,
      delay: 0,
      attempts: 3,
      backoff: { type: 'exponential', delayMs: 1_000, maxDelayMs: 3_600_000, jitter: 0.5 },
      removeOnComplete: false,
    });
    expect(maxPriority).toBe(10);
    // "about 48.6 days, RabbitMQ's bound"
    expect(maxDelayMs).toBe(4_200_000_000);
    expect(maxDelayMs / 86_400_000).toBeCloseTo(48.6, 1);
  });

  it('worker: concurrency 1, prefetch auto, leaseMs 30 000, closeTimeoutMs 10 000, backendCloseTimeoutMs 5 000, maxStalls 3, pollIntervalMs 1 000, maintenanceIntervalMs 5 000, backendTimeoutMs 5 000, promoteIntervalMs 50, retention 1 000 / 24 h and 10 000 / 7 days, groups, autoscale', () => {
    const queue = new Queue({ name: 'defaults', provider: new MemoryProvider() });
    const parsed = workerOptionsSchema.parse({ queue, handler: () => {} });
    expect(parsed).toMatchObject({
      concurrency: 1,
      prefetch: 'auto',
      leaseMs: 30_000,
      closeTimeoutMs: 10_000,
      backendCloseTimeoutMs: 5_000,
      maxStalls: 3,
      pollIntervalMs: 1_000,
      maintenanceIntervalMs: 5_000,
      backendTimeoutMs: 5_000,
      promoteIntervalMs: 50,
      retention: {
        completedCount: 1_000,
        completedAgeMs: 24 * 3_600_000,
        deadCount: 10_000,
        deadAgeMs: 7 * 24 * 3_600_000,
      },
      groups: { weights: {}, defaultWeight: 1 },
      backoffStrategies: {},
      autostart: true,
    });
    expect(parsed.defaultTimeoutMs).toBeUndefined();
    expect(parsed.autoscale).toBeUndefined();
    const scaled = workerOptionsSchema.parse({ queue, handler: () => {}, autoscale: { min: 1, max: 4 } });
    expect(scaled.autoscale).toMatchObject({ jobsPerSlot: 10, intervalMs: 1_000 });
    expect(retentionSchema.parse({})).toEqual(parsed.retention);
  });

  it('queue: depthCacheMs 1 000, depthTimeoutMs 2 000, no addTimeoutMs', () => {
    const parsed = queueOptionsSchema.parse({ name: 'defaults', provider: new MemoryProvider() });
    expect(parsed).toMatchObject({ depthCacheMs: 1_000, depthTimeoutMs: 2_000 });
    expect(parsed.addTimeoutMs).toBeUndefined();
  });

  it("providers: Redis prefix 'noa:mq', addChunkSize 1 000, closeTimeoutMs 2 000; the store's prefix 'noa:mq:state', outboxTimeoutMs 30 000; RabbitMQ's reconnect 100 → 5 000, connect 5 000, ready 10 000, close 5 000", () => {
    const connection = new Redis({ lazyConnect: true, maxRetriesPerRequest: null });
    try {
      expect(redisProviderOptionsSchema.parse({ connection })).toMatchObject({
        prefix: 'noa:mq',
        addChunkSize: 1_000,
        closeTimeoutMs: 2_000,
      });
      expect(redisJobStateStoreOptionsSchema.parse({ connection })).toMatchObject({
        prefix: 'noa:mq:state',
        outboxTimeoutMs: 30_000,
        addChunkSize: 1_000,
        closeTimeoutMs: 2_000,
      });
    } finally {
      connection.disconnect();
    }
    expect(rabbitMqProviderOptionsSchema.parse({ url: 'amqp://localhost' })).toMatchObject({
      reconnectDelayMs: 100,
      maxReconnectDelayMs: 5_000,
      connectTimeoutMs: 5_000,
      readyTimeoutMs: 10_000,
      closeTimeoutMs: 5_000,
      delayQueueIdleMs: 60_000,
    });
  });
});
