import { delay } from '@noa/core';
import { generousDeadlineMs } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

describe.skipIf(!redisUp)('hot keys across restarts', () => {
  const prefix = testPrefix('cm_hot');
  const redis = redisUp ? new Redis(redisUrl) : undefined;
  afterAll(async () => {
    if (redis) {
      await dropPrefix(prefix);
      redis.disconnect();
    }
  });

  it('close() saves the hottest L1 keys and a new instance starts with them in L1', async () => {
    const before = new Cache({
      redis,
      prefix,
      hotKeys: 3,
      l1: { policy: 'lfu' },
      operationTimeoutMs: generousDeadlineMs,
    });
    for (let index = 0; index < 10; index += 1) await before.set(`k${index}`, index);
    for (let round = 0; round < 5; round += 1) {
      for (const key of ['k7', 'k8', 'k9']) await before.get(key);
    }
    await before.close();

    const after = new Cache({ redis, prefix, hotKeys: 3, operationTimeoutMs: generousDeadlineMs });
    await after.ready();
    expect(['k7', 'k8', 'k9'].map((key) => after.getLocal(key))).toEqual([7, 8, 9]);
    expect(after.getLocal('k1')).toBeUndefined();
    await after.close();
  });

  it('loads the hot keys once the bus listens: a write made before that is not missed in L1', async () => {
    const writer = new Cache({ redis, prefix, hotKeys: 1, operationTimeoutMs: generousDeadlineMs });
    await writer.ready();
    await writer.set('hot', 'v1');
    await writer.get('hot');
    await writer.saveHotKeys(1);

    // The new instance's bus connection subscribes only when the test lets it (a slow
    // connection, as a new TCP connection and its ready check are): its other calls go on.
    const client = new Redis(redisUrl);
    let letSubscribe = () => {};
    const subscribeHeld = new Promise<void>((resolve) => {
      letSubscribe = resolve;
    });
    const duplicate = client.duplicate.bind(client);
    client.duplicate = ((...args: Parameters<Redis['duplicate']>) => {
      const subscriber = duplicate(...args);
      const subscribe = subscriber.subscribe.bind(subscriber) as (...channels: string[]) => Promise<unknown>;
      subscriber.subscribe = (async (...channels: string[]) => {
        await subscribeHeld;
        return subscribe(...channels);
      }) as Redis['subscribe'];
      return subscriber;
    }) as Redis['duplicate'];
    const starting = new Cache({ redis: client, prefix, hotKeys: 1, operationTimeoutMs: generousDeadlineMs });
    // Time for the hot keys to load, had they not waited for the bus (they were in L1 at once).
    for (let waited = 0; waited < 500 && starting.getLocal('hot') === undefined; waited += 10)
      await delay(10);
    // Written while the new instance cannot hear it: its bus message is lost to it.
    await writer.set('hot', 'v2');
    letSubscribe();
    await starting.ready();
    // v1, had the hot keys been loaded before the bus listened: this L1 would serve it for its TTL.
    expect(starting.getLocal('hot')).toBe('v2');
    expect(await starting.get('hot')).toBe('v2');
    await starting.close();
    await writer.close();
    client.disconnect();
  });
});
