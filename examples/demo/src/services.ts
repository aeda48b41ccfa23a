import { once } from 'node:events';
import { createPgPool, type PgPool } from '@noa/connection-pool/pg';
import { RabbitMqProvider } from '@noa/message-queue/rabbitmq';
import { RedisJobStateStore } from '@noa/message-queue/redis';
import { recommendedRedisOptions } from '@noa/rate-limiter/redis';
import { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import type { ServicesConfig } from './config.js';

/** Warnings and errors of the packages on the console (their debug and info lines are dropped). */
export const consoleWarnings = {
  debug: () => {},
  info: () => {},
  warn: (message: string, fields?: Record<string, unknown>) => console.warn(message, fields ?? ''),
  error: (message: string, fields?: Record<string, unknown>) => console.error(message, fields ?? ''),
};

/** The connections of one app instance in services mode; every instance opens its own. */
export interface Services {
  /** Prefix of the demo's Redis keys, Postgres schema and queue names. */
  namespace: string;
  /** How many instances share the services (each one's share of a limit while Redis is down). */
  instances: number;
  /**
   * For the rate limiters: fails at once while disconnected (`recommendedRedisOptions`), so
   * the fail mode answers instead of a request waiting for a reconnect.
   */
  limiterRedis: Redis;
  /**
   * For the cache: default options. The cache bounds each call with its own timeout, and its
   * bus subscribes on a duplicate of this client, which must be allowed to queue that
   * subscription until the connection is up.
   */
  cacheRedis: Redis;
  /** For the job state store: `maxRetriesPerRequest: null`, so job transitions wait out a Redis restart. */
  queueRedis: Redis;
  /** Postgres through @noa/connection-pool (add `replicas` to send the product reads to them). */
  db: PgPool;
  /**
   * Email jobs travel through RabbitMQ; their state (dedupe, `getJob`, counts) lives in Redis.
   * Closed by `DemoApp.close` after its worker (which also closes the state store).
   */
  jobs: RabbitMqProvider;
  /** Resolves once Redis, Postgres and RabbitMQ answer; rejects naming the one that does not. */
  ready(): Promise<void>;
  /** Closes the Postgres pool and the Redis clients (after the app's parts: see `DemoApp.close`). */
  close(): Promise<void>;
}

/** Letters, digits and `_`: valid as a Postgres schema, a Redis key prefix and a queue name. */
const namespacePattern = /^[a-z][a-z0-9_]*$/;

/** How long `ready()` waits for each service before giving up. */
const readyTimeoutMs = 10_000;

/**
 * Opens this instance's connections to the services. Nothing is awaited here: clients connect
 * in the background, and `ready()` tells when (and whether) they are up.
 */
export function connectServices(config: ServicesConfig, registry: Registry): Services {
  const namespace = config.namespace ?? 'noa_demo';
  if (!namespacePattern.test(namespace))
    throw new Error(`namespace must match ${namespacePattern}: ${JSON.stringify(namespace)}`);
  const limiterRedis = new Redis(config.redisUrl, recommendedRedisOptions);
  const cacheRedis = new Redis(config.redisUrl);
  const queueRedis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  for (const client of [limiterRedis, cacheRedis, queueRedis]) {
    // Outages show in the packages' fail modes and metrics; without a listener ioredis would
    // also print every failed reconnect.
    client.on('error', () => {});
  }
  const db = createPgPool({
    name: namespace,
    primary: config.databaseUrl,
    pool: { max: 10, acquireTimeoutMs: 2_000 },
    registry,
    logger: consoleWarnings,
  });
  const jobs = new RabbitMqProvider({
    url: config.amqpUrl,
    connectionName: `${namespace} demo`,
    state: new RedisJobStateStore({ connection: queueRedis, prefix: `${namespace}:mq:state` }),
    logger: consoleWarnings,
  });
  return {
    namespace,
    instances: config.instances ?? 2,
    limiterRedis,
    cacheRedis,
    queueRedis,
    db,
    jobs,
    ready: async () => {
      await Promise.all([
        within(`Redis at ${redacted(config.redisUrl)}`, async (signal) => {
          for (const client of [limiterRedis, cacheRedis, queueRedis])
            if (client.status !== 'ready') await once(client, 'ready', { signal });
        }),
        within(`Postgres at ${redacted(config.databaseUrl)}`, () => db.query('SELECT 1')),
        // The provider reconnects for ever in the background; ready() makes a wrong AMQP_URL
        // fail at start (BrokerUnavailableError, naming the host) instead of at the first job.
        within(`RabbitMQ at ${redacted(config.amqpUrl)}`, () => jobs.ready(readyTimeoutMs)),
      ]);
    },
    close: async () => {
      await db.close();
      for (const client of [limiterRedis, cacheRedis, queueRedis]) client.disconnect();
    },
  };
}

/** Runs `check`, rejecting with a message that names `what` if it fails or takes too long. */
async function within(what: string, check: (signal: AbortSignal) => Promise<unknown>): Promise<void> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      const error = new Error(`no answer in ${readyTimeoutMs / 1_000} s`);
      controller.abort(error);
      reject(error);
    }, readyTimeoutMs);
  });
  try {
    await Promise.race([check(controller.signal), timedOut]);
  } catch (error) {
    throw new Error(`${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
}

/** The URL without its password, for messages. */
function redacted(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}
