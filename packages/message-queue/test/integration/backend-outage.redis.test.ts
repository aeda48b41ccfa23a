import type { Logger } from '@noa/core';
import { startPrivateRedisOrSkip, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RedisProvider } from '../../src/redis.js';
import { sleep, waitFor } from '../helpers.js';

// One private redis-server for the file, stopped (SIGKILL) and restarted by each test; the tests
// run one after another, and each leaves it running.
const privateRedis = await startPrivateRedisOrSkip();

interface Lines {
  logger: Logger;
  warn: string[];
  info: string[];
}

function capture(): Lines {
  const lines: Lines = { warn: [], info: [], logger: undefined as unknown as Logger };
  lines.logger = {
    debug: () => {},
    info: (message) => lines.info.push(message),
    warn: (message, fields) => lines.warn.push(`${message} ${JSON.stringify(fields ?? {})}`),
    error: () => {},
  };
  return lines;
}

async function gauge(registry: Registry, name: string, labels: Record<string, string>): Promise<number[]> {
  const metric = await registry.getSingleMetric(name)?.get();
  return (metric?.values ?? [])
    .filter((value) => Object.entries(labels).every(([key, wanted]) => value.labels[key] === wanted))
    .map((value) => value.value);
}

describe.skipIf(privateRedis.skip !== undefined)('Redis outage (private redis-server stopped)', () => {
  const server = privateRedis.redis!;
  const connections: Redis[] = [];
  const connect = (): Redis => {
    const connection = new Redis(server.url, { maxRetriesPerRequest: null });
    connection.on('error', () => {});
    connections.push(connection);
    return connection;
  };
  afterAll(async () => {
    for (const connection of connections) connection.disconnect();
    await server.stop();
  });

  it('the worker emits one error and warns when Redis stops answering, shows it in backend_up, and logs the recovery', async () => {
    const provider = new RedisProvider({ connection: connect() });
    const registry = new Registry();
    const lines = capture();
    const queue = new Queue({ name: uniqueName('outage-worker'), provider });
    const done: string[] = [];
    const errors: Error[] = [];
    const worker = new Worker({
      queue,
      registry,
      logger: lines.logger,
      pollIntervalMs: 100,
      backendTimeoutMs: 500,
      handler: (job) => {
        done.push(job.id);
      },
    });
    worker.on('error', (error) => errors.push(error));
    try {
      await queue.add('before', null);
      await waitFor(() => done.length === 1, 5_000, 'a job run while Redis is up');
      expect(await gauge(registry, 'noa_message_queue_backend_up', { queue: queue.name })).toEqual([1]);
      expect(worker.backendUp).toBe(true);

      await server.kill();
      // Many polls and exchanges' worth of outage: still one error event.
      await sleep(3_000);
      expect(errors.map((error) => (error as Error & { code?: string }).code)).toEqual([
        'NOA_MQ_BACKEND_UNAVAILABLE',
      ]);
      expect(errors[0]!.message).toMatch(/did not answer .* within 500 ms/);
      expect(lines.warn.filter((line) => line.includes('backend unavailable'))).toHaveLength(1);
      expect(await gauge(registry, 'noa_message_queue_backend_up', { queue: queue.name })).toEqual([0]);
      expect(worker.backendUp).toBe(false);

      await server.restart();
      await waitFor(() => worker.backendUp, 10_000, 'the worker to see Redis back');
      expect(lines.info.filter((line) => line.includes('backend available again'))).toHaveLength(1);
      expect(await gauge(registry, 'noa_message_queue_backend_up', { queue: queue.name })).toEqual([1]);
      await queue.add('after', null);
      await waitFor(() => done.length === 2, 5_000, 'a job run after the restart');
      expect(errors).toHaveLength(1);
    } finally {
      if (!server.port) await server.restart();
      await worker.close(0);
      await provider.close();
    }
  }, 30_000);
});
