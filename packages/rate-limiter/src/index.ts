// core's errors our calls throw (bad options, use after close, a store call past its deadline or
// refused by the open breaker), so that catching them needs no import of @noa/core.

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
export { type AcquireOptions, acquireOptionsSchema } from './acquire-queue.js';
export { type Adjuster, type Algorithm, adjusters, algorithms } from './algorithms/index.js';
export { type AutoBlockOptions, autoBlockSchema, type BlockState, recordViolation } from './auto-block.js';
export type { Decision, Step } from './decision.js';
export {
  AcquireError,
  type AcquireFailure,
  type AnyRateLimiterError,
  CostExceedsCapacityError,
  HealthCheckTimeoutError,
  InvalidAdjustmentError,
  InvalidCheckInputError,
  InvalidCostError,
  RateLimitedError,
  RateLimiterError,
  type RateLimiterErrorCode,
  RateLimitStoreError,
  SyncCheckUnsupportedError,
  UnsupportedOperationError,
} from './errors.js';
export {
  abnormalUsageDetectedType,
  blockedStatuses,
  costExceedsCapacityType,
  type HeaderDraft,
  type HeaderOptions,
  headerDrafts,
  type LegacyResetFormat,
  legacyResetFormats,
  type ProblemOptions,
  type QuotaProblem,
  quotaExceededType,
  quotaProblem,
  rateLimitHeaders,
} from './headers.js';
export { ipKey } from './ip-key.js';
export { IpList } from './ip-list.js';
export { type CheckInput, createRateLimiter, RateLimiter } from './limiter.js';
export type { MetricsRegistry } from './limiter-metrics.js';
export {
  type FailMode,
  failModes,
  type RateLimiterOptions,
  rateLimiterOptionsSchema,
} from './limiter-options.js';
export { customKeyOf, keyKinds, maxCustomKeyValueLength, type RequestFacts } from './middleware/options.js';
export {
  type AlgorithmName,
  algorithmNames,
  type LimitInput,
  type LimitPolicy,
  limitSchema,
} from './policy.js';
export type {
  CheckChannelMessage,
  CheckOutcome,
  DecisionSource,
  FailModeResult,
  LimitStatus,
  QuotaResult,
  RateLimitResult,
} from './result.js';
export { LimiterPrefixConflictError } from './store-claims.js';
export { MemoryStore, type MemoryStoreOptions } from './stores/memory-store.js';
export type {
  ConsumeOptions,
  ConsumeOutcome,
  ConsumeRequest,
  RateLimitStore,
  StoreAdjustment,
} from './stores/store.js';
