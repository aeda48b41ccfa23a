export { aclRefusedObjects, type RestrictedAclUser, restrictedAclUsers } from './acl-users.js';
export { type CommandStat, clusterMasterPortOf, commandStat } from './command-stats.js';
export { type CleanupStep, cleanUpWithin, generousDeadlineMs, within } from './deadlines.js';
export { busyFor, type EchoProcess, startEchoProcess } from './echo-process.js';
export {
  type ContainerSpec,
  containerSpecs,
  dockerAvailable,
  ensureService,
  requireService,
  type StartedService,
  skipReason,
  startServiceContainer,
  stopServiceContainers,
} from './ensure-service.js';
export {
  brokerList,
  hostPort,
  isReachable,
  parseHostPort,
  redactUrl,
  type ServiceName,
  serviceDefaults,
  serviceUrl,
} from './env.js';
export { clearKafkaTopics } from './kafka-topics.js';
export { activeResources, activeTimers, listenerCounts, liveObjects } from './leak-counts.js';
export {
  type MysqlDatabase,
  quoteMysqlIdentifier,
  withDatabasePath,
  withMysqlDatabase,
} from './mysql-database.js';
export { createNamespace, type Namespace, namespaceFor, uniqueName } from './namespace.js';
export { ephemeralPortRange, portFree, restartablePort, sparePort, waitForPort } from './ports.js';
export {
  type PostgresSchema,
  postgresExec,
  quoteIdentifier,
  withPostgresSchema,
  withSearchPath,
} from './postgres-schema.js';
export {
  type PrivatePostgres,
  type PrivatePostgresOptions,
  postgresBinDir,
  startPrivatePostgres,
} from './private-postgres.js';
export { type PrivateRabbit, type PrivateRabbitOptions, startPrivateRabbit } from './private-rabbit.js';
export { type PrivateRedis, startPrivateRedis, startPrivateRedisOrSkip } from './private-redis.js';
export {
  type PrivateSentinel,
  startPrivateSentinel,
  startPrivateSentinelOrSkip,
} from './private-sentinel.js';
export {
  type RabbitVhost,
  type RabbitVhostOptions,
  rabbitManagementUrl,
  withRabbitVhost,
  withVhostPath,
} from './rabbit-vhost.js';
export {
  documentationFiles,
  expectedOutputs,
  formatLogs,
  type ReadmeBlock,
  readmeBlocks,
  runReadmeBlock,
  withPackageSources,
} from './readme.js';
export {
  type LogEntry,
  type LogLevel,
  type RecordingLogger,
  recordingLogger,
} from './recording-logger.js';
export {
  type PrivateRedisCluster,
  type ReplicatedRedisCluster,
  startRedisCluster,
  startRedisClusterOrSkip,
  startReplicatedRedisCluster,
  startReplicatedRedisClusterOrSkip,
} from './redis-cluster.js';
export { type MonitoredCommand, monitorRedis, parseMonitorLine, type RedisMonitor } from './redis-monitor.js';
export { clearRedisPrefix, escapeGlob, type RedisPrefix, withRedisPrefix } from './redis-prefix.js';
export { clearSqsQueues } from './sqs-queues.js';
export { startTcpProxy, type TcpProxy } from './tcp-proxy.js';
export { typecheckUserFile, type UserTypecheck } from './user-typecheck.js';
export {
  awayFromWindowEdge,
  type RedisTimeSource,
  redisTimeOf,
  type WindowClock,
} from './window-edge.js';
