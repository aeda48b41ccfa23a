import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, type QueueProvider, Scheduler, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { waitFor } from '../helpers.js';
import { redisContext } from './redis-context.js';

// The scheduler singleton needs jobId dedupe: on RabbitMQ it holds with a job state store.
const redis = await redisContext();
const url = serviceUrl('rabbitmq');
const rabbitUp = await isReachable('rabbitmq');
if (!rabbitUp) console.log(`skipped: no RabbitMQ at ${url}`);

/** A provider whose adds are recorded: each job id with whether each add of it was stored. */
function recordingAdds(provider: QueueProvider, stored: Map<string, boolean[]>): QueueProvider {
  return new Proxy(provider, {
    get: (target, key) => {
      const value = Reflect.get(target, key, target) as unknown;
      if (key !== 'add' || typeof value !== 'function') {
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return async (...args: Parameters<QueueProvider['add']>) => {
        const added = await target.add(...args);
        args[1].forEach((record, index) => {
          stored.set(record.id, [...(stored.get(record.id) ?? []), added[index] === true]);
        });
        return added;
      };
    },
  });
}

// Counts no ticks in a wall-clock window (was: 9-11 runs in a 10 s sleep, which a loaded machine
// stretches): waits for the ticks it needs, then checks what the store stored against what ran,
// as the Redis case does.
describe.skipIf(!redis.reachable || !rabbitUp)('scheduler singleton (RabbitMQ + Redis state)', () => {
  const providers: RabbitMqProvider[] = [];
  afterAll(async () => {
    await Promise.all(providers.map((provider) => provider.close()));
    await redis.closeAll();
  });

  it('3 scheduler instances on an every-second cron fire each tick once', async () => {
    const name = uniqueName('cron');
    const prefix = uniqueName('cron-state');
    const stored = new Map<string, boolean[]>();
    const provider = () => {
      const made = new RabbitMqProvider({
        url,
        state: new RedisJobStateStore({ connection: redis.connect(), prefix }),
      });
      providers.push(made);
      return made;
    };
    // Three "processes": each its own connections, provider, queue and scheduler.
    const schedulers = Array.from({ length: 3 }, () => {
      const scheduler = new Scheduler(new Queue({ name, provider: recordingAdds(provider(), stored) }));
      scheduler.cron('heartbeat', '* * * * * *', { name: 'tick', data: null });
      return scheduler;
    });
    const consumerProvider = provider();
    const consumer = new Queue({ name, provider: consumerProvider });
    const ticks: string[] = [];
    const worker = new Worker({
      queue: consumer,
      concurrency: 5,
      handler: (job) => {
        ticks.push(job.id);
      },
    });
    await waitFor(() => new Set(ticks).size >= 10, 30_000, 'ten ticks to run');
    // Closing waits for the adds of ticks already fired; then each of them runs.
    await Promise.all(schedulers.map((scheduler) => scheduler.close()));
    await waitFor(
      async () => {
        const counts = await consumer.counts();
        return counts.waiting + counts.delayed + counts.active === 0;
      },
      10_000,
      'every tick added to have run',
    );
    await worker.close();
    const completed = (await consumer.counts()).completed;
    await consumerProvider.deleteQueue(name);
    console.log(
      `scheduler singleton (rabbitmq + state): ${ticks.length} runs for ${new Set(ticks).size} distinct ticks`,
    );
    // No tick ran twice.
    expect(new Set(ticks).size).toBe(ticks.length);
    // Each tick was stored once, whichever instance's add came first, and every tick stored ran.
    expect([...stored.keys()].sort()).toEqual([...ticks].sort());
    expect([...stored.values()].every((outcomes) => outcomes.filter(Boolean).length === 1)).toBe(true);
    expect(completed).toBe(ticks.length);
    // One tick per second, none skipped and none in between.
    const fireTimes = ticks.map((id) => Number(id.split(':').at(-1))).sort((a, b) => a - b);
    for (let index = 1; index < fireTimes.length; index += 1) {
      expect(fireTimes[index]! - fireTimes[index - 1]!).toBe(1_000);
    }
  }, 60_000);
});
