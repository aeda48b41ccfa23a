export {
  type BreakerHooks,
  type BreakerOptions,
  type BreakerProbe,
  type BreakerState,
  breakerOptionsSchema,
  type CircuitBreaker,
  createCircuitBreaker,
  defaultConsecutiveFailures,
} from './breaker.js';
export {
  type Clock,
  CoarseClock,
  coarseClock,
  coarseMonotonicClock,
  ManualClock,
  monotonicClock,
  systemClock,
} from './clock.js';
export { delay, maxTimerMs, startDeadline, withDeadline } from './deadline.js';
export {
  CircuitOpenError,
  ClosedError,
  ConfigError,
  type ConfigIssue,
  type NoaCoreError,
  type NoaCoreErrorCode,
  NoaError,
  type NoaErrorOptions,
  parseOptions,
  TimeoutError,
} from './errors.js';
export {
  type ComponentHealthBody,
  combineHealth,
  type HealthCauseBody,
  type HealthCheck,
  type HealthCheckEntry,
  type HealthCheckOptions,
  type HealthReport,
  type HealthResponse,
  type HealthResponseWriter,
  type HealthStatus,
  healthCheckOptionsSchema,
  healthResponse,
  type LivenessBody,
  type LivenessOptions,
  livenessHandler,
  livenessOptionsSchema,
  type ReadinessHandler,
  readinessHandler,
  runHealthChecks,
  type ServiceHealth,
  type ServiceHealthBody,
} from './health.js';
export {
  HealthProbeGate,
  type HealthProbeGateOptions,
  type HealthProbeOptions,
  type HealthProbeOutcome,
  healthProbeOptionsSchema,
  probeBackend,
  probedHealth,
  probeTimedOut,
} from './health-probe.js';
export {
  LogSampler,
  type LogSamplerOptions,
  logSamplerOptionsSchema,
} from './log-sampler.js';
export { childLogger, fromPino, isLogger, type Logger, type PinoLike, silentLogger } from './logger.js';
export {
  type CounterMetric,
  type GaugeMetric,
  GaugeShare,
  type GaugeVote,
  gaugeVote,
  type HistogramMetric,
  type Labels,
  latencyBucketsSeconds,
  MetricsFactory,
  metricLabelValue,
  type VotedGauge,
} from './metrics.js';
export { PartAnswers, PartFailure, partAnswerWindowMs, unlessPartFailure } from './part-answers.js';
export { type RedisInfoClient, redisEvictingPolicy, whenRedisMayEvict } from './redis-memory-policy.js';
export {
  type PingRedisOptions,
  pingRedis,
  RedisNotConnectedError,
  type RedisPingClient,
  type RedisPingNode,
} from './redis-ping.js';
export { type RevivableRedisClient, reviveSentinelClient } from './sentinel-revival.js';
export { tracingChannel } from './tracing.js';
