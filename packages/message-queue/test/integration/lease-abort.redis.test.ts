import { startPrivateRedisOrSkip, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { LeaseLostError, Queue, Worker } from '../../src/index.js';
import { RedisProvider } from '../../src/redis.js';
import { waitFor } from '../helpers.js';

const privateRedis = await startPrivateRedisOrSkip();

describe.skipIf(privateRedis.skip !== undefined)('Redis: a lease that expires aborts the handler', () => {
  afterAll(() => privateRedis.redis?.stop());

  it('aborts job.signal with LeaseLostError when renewal is blocked past leaseMs, and the job runs again once Redis is back', async () => {
    const server = privateRedis.redis!;
    const connection = new Redis(server.url, { maxRetriesPerRequest: null });
    const provider = new RedisProvider({ connection });
    const queue = new Queue({ name: uniqueName('lease-abort'), provider });
    const registry = new Registry();
    const reasons: unknown[] = [];
    const failed: string[] = [];
    const completed: unknown[] = [];
    let runs = 0;
    const worker = new Worker({
      queue,
      registry,
      leaseMs: 1_000,
      maintenanceIntervalMs: 200,
      handler: async (job) => {
        runs += 1;
        if (runs > 1) return 'second run';
        // A well-written handler: it stops when its signal aborts.
        await new Promise<void>((_resolve, reject) => {
          job.signal.addEventListener('abort', () => {
            reasons.push(job.signal.reason);
            reject(job.signal.reason);
          });
        });
      },
    });
    worker.on('failed', (id) => failed.push(id));
    worker.on('completed', (_id, result) => completed.push(result));
    try {
      await queue.add('long', null);
      await waitFor(() => runs === 1, 5_000, 'the handler to start');
      // Frozen for longer than the lease: the worker cannot renew it and must assume it lost.
      server.freeze();
      try {
        await waitFor(() => reasons.length === 1, 5_000, 'the signal to abort while Redis is frozen');
      } finally {
        server.resume();
      }
      const [reason] = reasons;
      expect(reason).toBeInstanceOf(LeaseLostError);
      expect(reason).toMatchObject({ code: 'NOA_MQ_LEASE_LOST', details: { reason: 'expired' } });
      // The aborted try is not a failed attempt; the job is recovered and runs again.
      await waitFor(() => completed.length === 1, 10_000, 'the job to run again and complete');
      expect(completed).toEqual(['second run']);
      expect(failed).toEqual([]);
      expect(await registry.metrics()).toMatch(
        new RegExp(`noa_message_queue_leases_lost_total\\{queue="${queue.name}"\\} 1\\b`),
      );
    } finally {
      server.resume();
      await worker.close();
      await provider.close();
      connection.disconnect();
    }
  }, 30_000);
});
