// The Redis store's entry, `@noa/rate-limiter/redis`: apart from the main entry, so that only its
// users need ioredis (a declaration importing an optional peer is TS2307 without it).
export {
  RedisStore,
  type RedisStoreOptions,
  recommendedClusterOptions,
  recommendedRedisOptions,
} from './stores/redis-store.js';
