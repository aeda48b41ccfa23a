import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { Queue, type QueueProvider, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { sleep, waitFor } from '../helpers.js';

const url = serviceUrl('rabbitmq');
const reachable = await isReachable('rabbitmq');
if (!reachable) console.log(`skipped: no RabbitMQ at ${url}`);
const redisUp = await isReachable('redis');

const variants = [
  { label: 'AMQP only', state: false, skip: false },
  { label: 'with a Redis job state store', state: true, skip: !redisUp },
];

describe.skipIf(!reachable)('RabbitMQ: a provider closed before its worker', () => {
  for (const variant of variants) {
    it.skipIf(variant.skip)(
      `the worker backs off instead of spinning, and close() resolves (${variant.label})`,
      async () => {
        const connection = variant.state
          ? new Redis(serviceUrl('redis'), { maxRetriesPerRequest: null })
          : undefined;
        const provider = new RabbitMqProvider({
          url,
          ...(connection
            ? { state: new RedisJobStateStore({ connection, prefix: uniqueName('closed-provider') }) }
            : {}),
        });
        const name = uniqueName('closed-provider');
        // Counts the worker's exchanges; past 1,000 it stops answering, so a loop that would
        // starve the event loop for ever ends and the test fails instead of hanging.
        let exchanges = 0;
        const counting = new Proxy(provider, {
          get: (target, key) => {
            const value = Reflect.get(target, key, target) as unknown;
            if (typeof value !== 'function') return value;
            if (key !== 'exchange') return value.bind(target);
            return (...args: Parameters<QueueProvider['exchange']>) => {
              exchanges += 1;
              return exchanges > 1_000 ? new Promise(() => {}) : target.exchange(...args);
            };
          },
        });
        const queue = new Queue({ name, provider: counting });
        const worker = new Worker({ queue, handler: () => 'ok', pollIntervalMs: 100 });
        worker.on('error', () => {});
        try {
          const done = new Promise((resolve) => worker.once('completed', resolve));
          await queue.add('first', null);
          await done;
          await provider.deleteQueue(name);
          const before = exchanges;
          await provider.close();
          await sleep(500);
          // Before: the pump exchanged in a microtask loop (the closed provider answered at once
          // with nothing and its wait returned at once), starving timers and burning a core.
          expect(exchanges - before).toBeLessThan(50);
          const closing = worker.close();
          await waitFor(
            async () => (await Promise.race([closing.then(() => true), sleep(10)])) === true,
            6_000,
          );
        } finally {
          await worker.close();
          await provider.close();
          await connection?.quit();
        }
      },
      30_000,
    );
  }
});
