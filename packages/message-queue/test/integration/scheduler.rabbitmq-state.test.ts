import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, Scheduler, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { sleep } from '../helpers.js';
import { redisContext } from './redis-context.js';

// The scheduler singleton needs jobId dedupe: on RabbitMQ it holds with a job state store.
const redis = await redisContext();
const url = serviceUrl('rabbitmq');
const rabbitUp = await isReachable('rabbitmq');
if (!rabbitUp) console.log(`skipped: no RabbitMQ at ${url}`);

describe.skipIf(!redis.reachable || !rabbitUp)('scheduler singleton (RabbitMQ + Redis state)', () => {
  const providers: RabbitMqProvider[] = [];
  afterAll(async () => {
    await Promise.all(providers.map((provider) => provider.close()));
    await redis.closeAll();
  });

  it('3 scheduler instances on an every-second cron fire each tick once', async () => {
    const name = uniqueName('cron');
    const prefix = uniqueName('cron-state');
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
      const scheduler = new Scheduler(new Queue({ name, provider: provider() }));
      scheduler.cron('heartbeat', '* * * * * *', { name: 'tick', data: null });
      return scheduler;
    });
    const consumerProvider = provider();
    const ticks: string[] = [];
    const worker = new Worker({
      queue: new Queue({ name, provider: consumerProvider }),
      concurrency: 5,
      handler: (job) => {
        ticks.push(job.id);
      },
    });
    await sleep(10_000);
    await Promise.all(schedulers.map((scheduler) => scheduler.close()));
    await sleep(300);
    await worker.close();
    await consumerProvider.deleteQueue(name);
    const fireTimes = ticks.map((id) => Number(id.split(':').at(-1))).sort((a, b) => a - b);
    console.log(
      `scheduler singleton (rabbitmq + state): ${ticks.length} runs for ${new Set(ticks).size} distinct ticks in 10 s`,
    );
    expect(new Set(ticks).size).toBe(ticks.length);
    expect(ticks.length).toBeGreaterThanOrEqual(9);
    expect(ticks.length).toBeLessThanOrEqual(11);
    for (let index = 1; index < fireTimes.length; index += 1) {
      expect(fireTimes[index]! - fireTimes[index - 1]!).toBe(1_000);
    }
  }, 20_000);
});
