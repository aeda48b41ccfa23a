export { hostPort, isReachable, type ServiceName, serviceDefaults, serviceUrl, skipReason } from './env.js';
export { uniqueName } from './namespace.js';
export { sparePort, waitForPort } from './ports.js';
export { type PrivateRedis, startPrivateRedis } from './private-redis.js';
export { type PrivateRedisCluster, startRedisCluster } from './redis-cluster.js';
