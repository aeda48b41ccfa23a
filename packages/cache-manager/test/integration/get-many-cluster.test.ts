import { startRedisClusterOrSkip } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';

const { cluster, skip } = await startRedisClusterOrSkip(3);

/**
 * A batch read on a Cluster whose keys span several masters, one of them stalled: the values on
 * the healthy masters still come back within the deadline; only the stalled master's keys miss.
 */
describe.skipIf(skip !== undefined)('getMany on a Redis Cluster with one master stalled', () => {
  const clients: (Cluster | Redis)[] = [];
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await cluster?.stop();
  });

  it('returns the healthy masters’ values and misses only the stalled master’s keys', async () => {
    const connect = async () => {
      const client = new Cluster(cluster!.nodes);
      clients.push(client);
      await new Promise<void>((resolve) => client.once('ready', () => resolve()));
      return client;
    };
    const keys = Array.from({ length: 30 }, (_, index) => `k${index}`);
    const writer = new Cache({ redis: await connect(), prefix: 'gm:' });
    await writer.setMany(keys.map((key) => ({ key, value: `v-${key}` })));
    await writer.close();

    // Which keys the stalled master holds: a plain connection to it answers EXISTS only for its own slots.
    const [stalledNode] = cluster!.nodes;
    const stalled = new Redis(stalledNode!.port, stalledNode!.host);
    clients.push(stalled);
    const onStalled = new Set<string>();
    for (const key of keys) {
      const held = await stalled.exists(`gm:v:${key}`).catch(() => 0);
      if (held === 1) onStalled.add(key);
    }
    expect(onStalled.size).toBeGreaterThan(0);
    expect(onStalled.size).toBeLessThan(keys.length);

    const reader = new Cache({ redis: await connect(), prefix: 'gm:', operationTimeoutMs: 200 });
    try {
      await reader.ready();
      await stalled.client('PAUSE', 2_000, 'ALL');
      const values = await reader.getMany<string>(keys);
      for (const [index, key] of keys.entries()) {
        expect(values[index]).toBe(onStalled.has(key) ? undefined : `v-${key}`);
      }
    } finally {
      await stalled.client('UNPAUSE').catch(() => undefined);
      await reader.close();
    }
  });
});
