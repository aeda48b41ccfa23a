/**
 * `@noa/connection-pool/redis`: a pool of dedicated `ioredis` connections. Its declarations
 * import `ioredis`'s types; the main entry imports no driver.
 */
export {
  createRedisPool,
  RedisPool,
  type RedisPoolHealth,
  type RedisPoolOptions,
  redisPoolOptionsSchema,
} from './redis-pool.js';
