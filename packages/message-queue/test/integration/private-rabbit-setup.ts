import { existsSync } from 'node:fs';
import {
  cleanUpWithin,
  isReachable,
  type PrivateRabbit,
  serviceUrl,
  startPrivateRabbit,
  uniqueName,
  within,
} from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach } from 'vitest';
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

/** How long the private node may take to start (a loaded CI machine). */
export const nodeStartMs = 45_000;

/**
 * One private RabbitMQ node for the describe block it is called in: started before its cases,
 * destroyed after them, and started again before a case when an earlier one failed with the node
 * stopped (else that case's first add would wait for the broker until its bound, and every case
 * after would fail too). Returns the node's getter.
 */
export function usePrivateRabbitNode(): () => PrivateRabbit {
  let node: PrivateRabbit | undefined;
  beforeAll(async () => {
    node = await startPrivateRabbit();
  });
  afterAll(async () => {
    await node?.destroy();
  });
  beforeEach(async () => {
    if (node && !node.running) await within('start the private node left stopped', nodeStartMs, node.start());
  });
  return () => node!;
}

/** The bounds of {@link cleanUpCase}'s steps (ms). */
export interface CleanUpBounds {
  workerCloseMs: number;
  deleteQueueMs: number;
  providerCloseMs: number;
}

/**
 * A case's cleanup on a private node, each step bounded and named (`cleanUpWithin`): `first`
 * steps (e.g. let a held job finish), the worker closed, the queue deleted (only with the node
 * running: a node left stopped by a failure would hold deleteQueue for ever), the provider closed,
 * the state store's Redis disconnected.
 */
export function cleanUpCase(
  parts: {
    node: PrivateRabbit;
    worker: { close(): Promise<unknown> };
    queue: { name: string };
    provider: RabbitMqProvider;
    redis: Redis | undefined;
  },
  bounds: CleanUpBounds,
  first: [string, number, () => unknown][] = [],
): Promise<void> {
  const { node, worker, queue, provider, redis } = parts;
  return cleanUpWithin([
    ...first,
    ['worker.close()', bounds.workerCloseMs, () => worker.close()],
    [
      'provider.deleteQueue()',
      bounds.deleteQueueMs,
      () => (node.running ? provider.deleteQueue(queue.name) : undefined),
    ],
    ['provider.close()', bounds.providerCloseMs, () => provider.close()],
    ['redis.disconnect()', 1_000, () => redis?.disconnect()],
  ]);
}
