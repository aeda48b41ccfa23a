import { uniqueName } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, type QueueProvider, Scheduler, Worker } from '../../src/index.js';
import { RedisProvider } from '../../src/redis.js';
import { sleep, waitFor } from '../helpers.js';
import { redisContext } from './redis-context.js';

const redis = await redisContext();

/**
 * A provider whose adds are recorded (each job id with whether it was stored), delayed by
 * `lagMs` first; `sentAt` gets when each job id's add was sent.
 */
function recordingAdds(
  provider: QueueProvider,
  stored: Map<string, boolean[]>,
  lagMs = 0,
  sentAt?: Map<string, number>,
): QueueProvider {
  return new Proxy(provider, {
    get: (target, key) => {
      const value = Reflect.get(target, key, target) as unknown;
      if (key !== 'add' || typeof value !== 'function') {
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return async (...args: Parameters<QueueProvider['add']>) => {
        if (lagMs > 0) await sleep(lagMs);
        for (const record of args[1]) sentAt?.set(record.id, Date.now());
        const added = await target.add(...args);
        args[1].forEach((record, index) => {
          stored.set(record.id, [...(stored.get(record.id) ?? []), added[index] === true]);
        });
        return added;
      };
    },
  });
}

/** Resolves once the queue holds no job waiting, delayed or running: every tick added has run. */
async function settled(queue: Queue): Promise<void> {
  await waitFor(
    async () => {
      const counts = await queue.counts();
      return counts.waiting + counts.delayed + counts.active === 0;
    },
    10_000,
    'every tick added to have run',
  );
}

// The two cases use their own queues and connections: side by side, the short one costs nothing.
// Neither counts ticks in a wall-clock window (a loaded machine stretches the window): each
// waits for the ticks it needs, then checks what Redis stored against what ran.
describe.skipIf(!redis.reachable).concurrent('scheduler singleton (Redis)', () => {
  afterAll(() => redis.closeAll());

  it('3 scheduler instances on an every-second cron fire each tick once', async () => {
    const name = uniqueName('cron');
    const stored = new Map<string, boolean[]>();
    // Three "processes": each its own connection, provider, queue and scheduler.
    const schedulers = Array.from({ length: 3 }, () => {
      const provider = recordingAdds(new RedisProvider({ connection: redis.connect() }), stored);
      const scheduler = new Scheduler(new Queue({ name, provider }));
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
    await waitFor(() => new Set(ticks).size >= 10, 30_000, 'ten ticks to run');
    // Closing waits for the adds of ticks already fired; then each of them runs.
    await Promise.all(schedulers.map((scheduler) => scheduler.close()));
    await settled(consumer);
    await worker.close();
    console.log(`scheduler singleton: ${ticks.length} runs for ${new Set(ticks).size} distinct ticks`);
    // No tick ran twice.
    expect(new Set(ticks).size).toBe(ticks.length);
    // Each tick was stored once, whichever instance's add came first, and every tick stored ran.
    const storedOnce = [...stored].filter(([, outcomes]) => outcomes.filter(Boolean).length === 1);
    expect(storedOnce.map(([id]) => id).sort()).toEqual([...ticks].sort());
    expect([...stored.values()].every((outcomes) => outcomes.filter(Boolean).length === 1)).toBe(true);
    expect((await consumer.counts()).completed).toBe(ticks.length);
    // One tick per second, none skipped and none in between.
    const fireTimes = ticks.map((id) => Number(id.split(':').at(-1))).sort((a, b) => a - b);
    for (let index = 1; index < fireTimes.length; index += 1) {
      expect(fireTimes[index]! - fireTimes[index - 1]!).toBe(1_000);
    }
  }, 60_000);

  it('a tick whose job is removed on completion still runs once when another instance adds it late', async () => {
    const name = uniqueName('cron-late');
    const provider = new RedisProvider({ connection: redis.connect() });
    const stored = new Map<string, boolean[]>();
    // The second instance reaches Redis 300 ms later (a slow link, a lagging clock, a GC pause).
    const prompt = recordingAdds(provider, stored);
    const lateSentAt = new Map<string, number>();
    const late = recordingAdds(provider, stored, 300, lateSentAt);
    const job = { name: 'tick', data: null, options: { removeOnComplete: true } };
    const schedulers = [prompt, late].map((on) => {
      const scheduler = new Scheduler(new Queue({ name, provider: on }));
      scheduler.every('beat', 1_000, job);
      return scheduler;
    });
    const ticks: string[] = [];
    const ranAt = new Map<string, number>();
    const worker = new Worker({
      queue: new Queue({ name, provider }),
      handler: (tick) => {
        ticks.push(tick.id);
        ranAt.set(tick.id, Date.now());
      },
    });
    // Three ticks whose late add was sent after the tick had run (and both adds answered).
    const lateAfterRun = () =>
      ticks.filter((id) => stored.get(id)?.length === 2 && lateSentAt.get(id)! >= ranAt.get(id)!);
    await waitFor(() => lateAfterRun().length >= 3, 30_000, 'three ticks added late, after they ran');
    await Promise.all(schedulers.map((scheduler) => scheduler.close()));
    const queue = new Queue({ name, provider });
    await settled(queue);
    await worker.close();
    await provider.close();
    expect(new Set(ticks).size).toBe(ticks.length);
    // Every tick either instance added was stored once and ran once.
    expect([...stored.keys()].sort()).toEqual([...ticks].sort());
    expect([...stored.values()].every((outcomes) => outcomes.filter(Boolean).length === 1)).toBe(true);
  }, 60_000);
});
