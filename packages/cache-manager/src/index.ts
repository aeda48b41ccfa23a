// core's errors our calls throw or attach as `cause` (bad options, use after close, a Redis call
// past its deadline or refused by the open breaker), so that catching them needs no import of @noa/core.

export type { HealthProbeOptions as CheckHealthOptions } from '@noa/core';
export {
  CircuitOpenError,
  ClosedError,
  ConfigError,
  type ConfigIssue,
  type HealthReport,
  type HealthStatus,
  type NoaCoreError,
  type NoaCoreErrorCode,
  NoaError,
  TimeoutError,
} from '@noa/core';
export type { BusMessage } from './bus-message.js';
export { Cache, type CacheItem } from './cache.js';
export type { CacheStats } from './cache-counters.js';
export type { CacheEventListener, CacheEventMap, CacheEventName, StaleReason } from './cache-events.js';
export {
  type CacheOptions,
  cacheOptionsSchema,
  type Factory,
  type FactoryContext,
  type GetOrSetOptions,
  getOrSetOptionsSchema,
  type L1Options,
  type ManyFactory,
  type ManyFactoryResult,
  type SetOptions,
  setOptionsSchema,
} from './cache-options.js';
export { type CloseOptions, closeOptionsSchema } from './close-options.js';
export type { EdgePurger } from './edge-purger.js';
export { type CacheEntry, shouldRefreshAhead, shouldRefreshEarly } from './entry.js';
export {
  type AnyCacheManagerError,
  BackendUnavailableError,
  CacheManagerError,
  type CacheManagerErrorCode,
  EdgePurgeError,
  FactoryError,
  FactoryTimeoutError,
  type FactoryTimeoutReason,
  HealthCheckTimeoutError,
  LockTimeoutError,
  SerializationError,
  WarmAbortedError,
} from './errors.js';
export type { KeyTtl } from './key-ttl.js';
export { createEvictionPolicy, createL1Store, type EvictionPolicyName } from './l1/create-l1-store.js';
export type { L1Store, RemovalReason } from './l1/l1-store.js';
export type { EvictionPolicy } from './l1/policies/eviction-policy.js';
export type { RedisClient } from './l2/redis-client.js';
export type { MetricsRegistry } from './metrics-registry.js';
export type { CompressionName } from './serialization/compression.js';
export { EntryCodec } from './serialization/entry-codec.js';
export { type WarmOptions, type WarmProgress, type WarmReport, warmOptionsSchema } from './warm.js';
