import { startPrivateRedis, startPrivateRedisOrSkip, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { ClosedError, Queue, Worker } from '../../src/index.js';
import { RedisProvider } from '../../src/redis.js';
import { waitFor } from '../helpers.js';

// A private redis-server this file kills and restarts (never the shared one).
const privateRedis = await startPrivateRedisOrSkip();

describe.skipIf(privateRedis.skip !== undefined)(
  'Worker.health() and Queue.checkHealth() over a Redis outage',
  () => {
    const server = privateRedis.redis!;
    const connections: Redis[] = [];
    afterAll(async () => {
      for (const connection of connections) connection.disconnect();
      await server.stop();
    });

    it('go down with the cause while Redis is stopped, and up again once it is back', async () => {
      const connection = new Redis(server.url, { maxRetriesPerRequest: null });
      connection.on('error', () => {});
      connections.push(connection);
      const provider = new RedisProvider({ connection });
      const queue = new Queue({ name: uniqueName('health'), provider });
      const worker = new Worker({ queue, pollIntervalMs: 100, backendTimeoutMs: 500, handler: () => {} });
      try {
        await queue.add('job', { n: 1 });
        await waitFor(async () => (await queue.counts()).completed === 1, 10_000, 'the job to complete');
        expect(worker.health()).toMatchObject({
          component: `worker:${queue.name}`,
          status: 'up',
          details: { queue: queue.name, started: true, backendUp: true },
        });
        // Not the probe's deadline under test: the default 500 ms can pass on a loaded machine.
        expect(await queue.checkHealth({ timeoutMs: 5_000 })).toMatchObject({
          status: 'up',
          details: { counts: { completed: 1 } },
        });

        await server.kill();
        await waitFor(() => worker.health().status === 'down', 15_000, 'the worker to report down');
        const down = worker.health();
        expect(down.details).toMatchObject({ backendUp: false });
        expect(down.cause).toBeInstanceOf(Error);
        const probe = await queue.checkHealth({ timeoutMs: 300 });
        expect(probe.status).toBe('down');
        expect(probe.cause).toBeInstanceOf(Error);

        await server.restart();
        await waitFor(() => worker.health().status === 'up', 20_000, 'the worker to report up');
        expect(worker.health()).not.toHaveProperty('cause');
        await waitFor(
          async () => (await queue.checkHealth()).status === 'up',
          20_000,
          'the queue probe to answer',
        );
      } finally {
        await worker.close();
        await queue.close();
      }
      expect(worker.health().status).toBe('down');
      expect(worker.health().cause).toBeInstanceOf(ClosedError);
      expect((await queue.checkHealth()).cause).toBeInstanceOf(ClosedError);
    });

    it('is down (backendState unknown) while the broker has never answered, up once it does', async () => {
      // A second private server, stopped before the worker starts: its port is known and closed.
      const later = await startPrivateRedis();
      await later.kill();
      const connection = new Redis(later.url, { maxRetriesPerRequest: null });
      connection.on('error', () => {});
      connections.push(connection);
      const provider = new RedisProvider({ connection });
      const queue = new Queue({ name: uniqueName('health-unknown'), provider });
      const registry = new Registry();
      // A bound far past the test: only an answer may change what the worker reports.
      const worker = new Worker({ queue, registry, backendTimeoutMs: 60_000, handler: () => {} });
      try {
        await new Promise((resolve) => setTimeout(resolve, 300));
        // Before: 'up' (backendUp true from construction), a readiness probe passed a worker
        // that had never reached its broker.
        expect(worker.backendState).toBe('unknown');
        expect(worker.backendUp).toBe(false);
        const unknown = worker.health();
        expect(unknown.status).toBe('down');
        expect(unknown.details).toMatchObject({ started: true, backendUp: false, backendState: 'unknown' });
        expect(unknown).not.toHaveProperty('cause');
        // The gauge has no series until the backend is known.
        expect(await registry.getSingleMetricAsString('noa_message_queue_backend_up')).not.toContain(
          queue.name,
        );

        await later.restart();
        await waitFor(() => worker.health().status === 'up', 20_000, 'the worker to report up');
        expect(worker.backendState).toBe('up');
        expect(worker.health().details).toMatchObject({ backendUp: true, backendState: 'up' });
        expect(await registry.getSingleMetricAsString('noa_message_queue_backend_up')).toContain(
          `noa_message_queue_backend_up{queue="${queue.name}"} 1`,
        );
      } finally {
        await worker.close();
        await queue.close();
        await later.stop();
      }
    }, 40_000);
  },
);
