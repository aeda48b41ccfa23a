import { existsSync } from 'node:fs';
import { isReachable, type PrivateRabbit, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { RabbitMqProvider, type RabbitMqProviderOptions } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';

/**
 * Why this machine cannot start a private RabbitMQ node (testkit's `startPrivateRabbit` looks in
 * `$RABBITMQ_BIN_DIR`, default /usr/lib/rabbitmq/bin), printed as a skip; undefined when it can.
 */
export function privateRabbitUnavailable(): string | undefined {
  const binDir = process.env.RABBITMQ_BIN_DIR ?? '/usr/lib/rabbitmq/bin';
  const unavailable = existsSync(`${binDir}/rabbitmq-server`)
    ? undefined
    : `no RabbitMQ server binaries in ${binDir}`;
  if (unavailable) console.log(`skipped: ${unavailable}`);
  return unavailable;
}

/** A file's two setups: the broker alone, and with a Redis job state store (skipped without Redis). */
export interface StateVariant {
  label: string;
  state: boolean;
  skip: boolean;
}

/** The two setups, the second skipped (and said so) when the shared Redis is not reachable. */
export async function stateVariants(): Promise<StateVariant[]> {
  const redisUp = await isReachable('redis');
  if (!redisUp) console.log(`skipped (state store variant): no Redis at ${serviceUrl('redis')}`);
  return [
    { label: 'AMQP only', state: false, skip: false },
    { label: 'with a Redis job state store', state: true, skip: !redisUp },
  ];
}

/**
 * A provider on a private node that reconnects quickly, with a Redis job state store under a
 * fresh `statePrefix` name when `state`, and any other `options`. The caller closes the provider
 * and disconnects `redis`.
 */
export function providerOn(
  node: PrivateRabbit,
  state: boolean,
  statePrefix: string,
  options: Omit<RabbitMqProviderOptions, 'url' | 'state'> = {},
): { redis: Redis | undefined; provider: RabbitMqProvider } {
  const redis = state ? new Redis(serviceUrl('redis'), { maxRetriesPerRequest: null }) : undefined;
  const provider = new RabbitMqProvider({
    url: node.url,
    reconnectDelayMs: 50,
    maxReconnectDelayMs: 200,
    ...options,
    ...(redis
      ? { state: new RedisJobStateStore({ connection: redis, prefix: uniqueName(statePrefix) }) }
      : {}),
  });
  return { redis, provider };
}
