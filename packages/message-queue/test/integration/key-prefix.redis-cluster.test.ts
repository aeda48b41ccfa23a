import { type PrivateRedisCluster, startRedisClusterOrSkip, uniqueName } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RedisProvider } from '../../src/redis.js';
import { sleep, waitFor } from '../helpers.js';

// key-prefix.redis.test.ts on a 3-master Redis Cluster: ioredis prefixes the keys of the commands
// a Cluster sends (a script's declared keys included, and the slot is computed on the prefixed
// key), not the keys a script builds nor pub/sub channels. A queue's keys must stay on its
// `{queue}` slot and under the prefix, or a script touches a key of another slot (CROSSSLOT) or
// one the provider reads elsewhere.
const started = await startRedisClusterOrSkip(3);
const cluster: PrivateRedisCluster | undefined = started.cluster;

afterAll(async () => {
  await cluster?.stop();
}, 30_000);

/** Every key of the cluster's masters matching `pattern`. */
async function keysOnCluster(nodes: PrivateRedisCluster['nodes'], pattern: string): Promise<string[]> {
  const keys: string[] = [];
  for (const node of nodes) {
    const raw = new Redis(node.port, node.host);
    try {
      keys.push(...(await raw.keys(pattern)));
    } finally {
      raw.disconnect();
    }
  }
  return keys;
}

describe.skipIf(started.skip !== undefined)('a Redis Cluster connection with an ioredis keyPrefix', () => {
  // The prefix given to the Cluster, or in the options of its node connections: both prefix.
  for (const where of ['the Cluster options', 'redisOptions'] as const) {
    it(`add, work, retry, pause, the DLQ and counts work, and every key is under the prefix (keyPrefix in ${where})`, async () => {
      const keyPrefix = `${uniqueName('cluster-key-prefix')}:`;
      const connection =
        where === 'the Cluster options'
          ? new Cluster(cluster!.nodes, { keyPrefix, redisOptions: { maxRetriesPerRequest: null } })
          : new Cluster(cluster!.nodes, { redisOptions: { keyPrefix, maxRetriesPerRequest: null } });
      const name = uniqueName('prefixed-cluster');
      const provider = new RedisProvider({ connection });
      const queue = new Queue<number>({ name, provider });
      const runs: string[] = [];
      let worker: Worker<number> | undefined;
      try {
        await queue.pause();
        expect((await queue.counts()).paused).toBe(true);
        worker = new Worker<number>({
          queue,
          pollIntervalMs: 20_000, // wake-ups must come by pub/sub, on the prefixed channel
          handler: async (job) => {
            runs.push(`${job.name}#${job.attemptsMade}`);
            if (job.name === 'flaky' && job.attemptsMade === 0) throw new Error('first try fails');
            if (job.name === 'doomed') throw new Error('doomed');
            return job.data * 2;
          },
        });
        const held = await queue.add('held', 1);
        await sleep(300);
        expect(runs).toEqual([]);
        expect(await queue.counts()).toMatchObject({ waiting: 1, active: 0, paused: true });
        await queue.resume();
        await waitFor(
          async () => (await queue.getJob(held.id))?.state === 'completed',
          10_000,
          'the held job',
        );
        expect((await queue.getJob(held.id))?.result).toBe(2);
        const flaky = await queue.add('flaky', 2, { attempts: 2, backoff: { type: 'fixed', delayMs: 50 } });
        await queue.add('doomed', 0, { attempts: 1 });
        await waitFor(
          async () => (await queue.getJob(flaky.id))?.state === 'completed',
          10_000,
          'the retried job',
        );
        expect((await queue.getJob(flaky.id))?.result).toBe(4);
        await waitFor(async () => (await queue.dlq.list()).length === 1, 10_000, 'the dead job listed');
        expect((await queue.dlq.list()).map((job) => job.name)).toEqual(['doomed']);
        expect(runs.sort()).toEqual(['doomed#0', 'flaky#0', 'flaky#1', 'held#0']);
        expect(await queue.counts()).toMatchObject({
          waiting: 0,
          active: 0,
          delayed: 0,
          completed: 2,
          failed: 1,
          paused: false,
        });
        const keys = await keysOnCluster(cluster!.nodes, `*{${name}}*`);
        expect(keys.length).toBeGreaterThan(0);
        expect(keys.filter((key) => !key.startsWith(keyPrefix))).toEqual([]);
      } finally {
        await worker?.close();
        await provider.close();
        for (const node of cluster!.nodes) {
          const raw = new Redis(node.port, node.host);
          const keys = await raw.keys(`*{${name}}*`);
          if (keys.length > 0) await raw.del(...keys);
          raw.disconnect();
        }
        connection.disconnect();
      }
    }, 60_000);
  }
});
