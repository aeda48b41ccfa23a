import { clusterMasterPortOf, generousDeadlineMs, uniqueName } from '@noa/testkit';
import { describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { usePrivateCluster } from './redis-server.js';

const { installed: hasRedisServer, client: cluster } = usePrivateCluster(
  'the shared structures Cluster test',
);

/** The port of the master serving `key`. */
const masterOf = (key: string) => clusterMasterPortOf(cluster(), key);

describe.skipIf(!hasRedisServer)('shared msgpack structures on a 3-master Redis Cluster', () => {
  it('never decodes a value on another master into a shape appended after the list master lost its own', async () => {
    const prefix = `${uniqueName('cm_struct_cluster')}:`;
    const listKey = `${prefix}__structures`;
    const listMaster = await masterOf(listKey);
    // A cache key whose value lives on another master than the list: it survives the list's loss.
    let key = '';
    for (let index = 0; key === ''; index += 1) {
      if ((await masterOf(`${prefix}v:k${index}`)) !== listMaster) key = `k${index}`;
    }
    const options = {
      redis: cluster(),
      prefix,
      bus: false,
      l1: { maxEntries: 1 },
      operationTimeoutMs: generousDeadlineMs,
    };
    const first = new Cache(options);
    await first.ready();
    const snapshot = await cluster().lrange(listKey, 0, -1); // [epoch]: what the list master restores
    await first.set('a1', { alpha: 1, beta: '1' });
    await first.set('a2', { alpha: 2, beta: '2' }); // second sighting: ["alpha","beta"] appended
    await first.close();
    expect((await cluster().lrange(listKey, 0, -1))[1]).toBe(JSON.stringify(['alpha', 'beta']));
    const writer = new Cache(options);
    await writer.ready();
    await writer.set(key, { alpha: 3, beta: '3' });
    const bytes = (await cluster().getBuffer(`${prefix}v:${key}`))!;
    expect([bytes[0]! >> 4, bytes[5]]).toEqual([4, 1]); // uses the shared structure
    await writer.close();

    // The list's master restarts from an older RDB (or fails over to a lagging replica): the list
    // is back to its snapshot, same epoch; the value on the other master is untouched.
    await cluster()
      .multi()
      .del(listKey)
      .rpush(listKey, ...snapshot)
      .exec();
    const second = new Cache(options);
    await second.ready();
    await second.set('x1', { xray: 1, yank: '1' });
    await second.set('x2', { xray: 2, yank: '2' }); // appended at the position "alpha/beta" had
    await second.close();
    expect((await cluster().lrange(listKey, 0, -1))[1]).toBe(JSON.stringify(['xray', 'yank']));

    // An instance that learns ["xray","yank"] at that id reads the surviving value: a miss, never
    // { xray: 3, yank: '3' }.
    const reader = new Cache(options);
    await reader.ready();
    expect(await reader.get(key)).toBeUndefined();
    expect(reader.stats().l2Errors).toBe(1); // counted: an undecodable value
    expect(await reader.getOrSet(key, () => ({ alpha: 4, beta: '4' }))).toEqual({ alpha: 4, beta: '4' });
    const fresh = new Cache(options);
    expect(await fresh.get(key)).toEqual({ alpha: 4, beta: '4' });
    await Promise.all([reader.close(), fresh.close()]);
  });
});
