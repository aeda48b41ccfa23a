/**
 * `@noa/message-queue/redis`: the Redis backend (needs the optional peer `ioredis`). Its own entry
 * so a memory-only or RabbitMQ-only app type-checks without ioredis (decision 010).
 */
export {
  RedisJobStateStore,
  type RedisJobStateStoreOptions,
  redisJobStateStoreOptionsSchema,
} from './providers/redis-job-state-store.js';
export {
  RedisProvider,
  type RedisProviderOptions,
  redisProviderOptionsSchema,
} from './providers/redis-provider.js';
