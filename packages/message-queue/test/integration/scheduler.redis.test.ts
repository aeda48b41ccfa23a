import { uniqueName } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, type QueueProvider, Scheduler, Worker } from '../../src/index.js';
import { RedisProvider } from '../../src/redis.js';
import { sleep } from '../helpers.js';
import { redisContext } from './redis-context.js';

const redis = await redisContext();

// The two cases use their own queues and connections: side by side, the short one costs nothing.
describe.skipIf(!redis.reachable).concurrent('scheduler singleton (Redis)', () => {
  afterAll(() => redis.closeAll());

  it('3 scheduler instances on an every-second cron fire each tick once', async () => {
    const name = uniqueName('cron');
    // Three "processes": each its own connection, provider, queue and scheduler.
    const schedulers = Array.from({ length: 3 }, () => {
      const queue = new Queue({ name, provider: new RedisProvider({ connection: redis.connect() }) });
      const scheduler = new Scheduler(queue);
      scheduler.cron('heartbeat', '* * * * * *', { name: 'tick', data: null });
      return scheduler;
    });
    const consumer = new Queue({ name, provider: new RedisProvider({ connection: redis.connect() }) });
    const ticks: string[] = [];
    const worker = new Worker({
      queue: consumer,
      concurrency: 5,
      handler: (job) => {
        ticks.push(job.id);
      },
    });
    await sleep(10_000);
    await Promise.all(schedulers.map((scheduler) => scheduler.close()));
    await sleep(300);
    await worker.close();
    const fireTimes = ticks.map((id) => Number(id.split(':').at(-1))).sort((a, b) => a - b);
    console.log(
      `scheduler singleton: ${ticks.length} runs for ${new Set(ticks).size} distinct ticks in 10 s`,
    );
    expect(new Set(ticks).size).toBe(ticks.length);
    expect(ticks.length).toBeGreaterThanOrEqual(9);
    expect(ticks.length).toBeLessThanOrEqual(11);
    for (let index = 1; index < fireTimes.length; index += 1) {
      expect(fireTimes[index]! - fireTimes[index - 1]!).toBe(1_000);
    }
  }, 15_000);

  it('a tick whose job is removed on completion still runs once when another instance adds it late', async () => {
    const name = uniqueName('cron-late');
    const provider = new RedisProvider({ connection: redis.connect() });
    // The second instance reaches Redis 300 ms later (a slow link, a lagging clock, a GC pause).
    const late = new Proxy(provider, {
      get: (target, key) => {
        const value = Reflect.get(target, key, target) as unknown;
        if (key !== 'add' || typeof value !== 'function') {
          return typeof value === 'function' ? value.bind(target) : value;
        }
        return async (...args: Parameters<QueueProvider['add']>) => {
          await sleep(300);
          return target.add(...args);
        };
      },
    });
    const job = { name: 'tick', data: null, options: { removeOnComplete: true } };
    const schedulers = [provider, late].map((on) => {
      const scheduler = new Scheduler(new Queue({ name, provider: on }));
      scheduler.every('beat', 1_000, job);
      return scheduler;
    });
    const ticks: string[] = [];
    const worker = new Worker({
      queue: new Queue({ name, provider }),
      handler: (tick) => {
        ticks.push(tick.id);
      },
    });
    await sleep(3_500);
    await Promise.all(schedulers.map((scheduler) => scheduler.close()));
    await sleep(500);
    await worker.close();
    await provider.close();
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    expect(new Set(ticks).size).toBe(ticks.length);
  }, 10_000);
});
