import { delay } from '@noa/core';
import {
  type PrivateRedisCluster,
  type RecordingLogger,
  recordingLogger,
  startRedisCluster,
  startTcpProxy,
  type TcpProxy,
} from '@noa/testkit';
import { Cluster } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache } from '../../src/index.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';
import { redisServerInstalled } from './redis-server.js';

// The two blocks run concurrently: each has its own proxy (and the second its own Cluster),
// and most of their time is a wait for a late write that must not come.
describe.skipIf(!redisUp).concurrent('one instance cut off from Redis, the others not', () => {
  const prefix = testPrefix('cm_cut');
  const clients: Redis[] = [];
  const caches: Cache[] = [];
  let proxy: TcpProxy | undefined;
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    await proxy?.close();
    await dropPrefix(prefix);
  });

  it('does not replay, once reconnected, a write that failed while cut, over a later write of another instance', async () => {
    proxy = await startTcpProxy(redisUrl);
    // ioredis's defaults (maxRetriesPerRequest 20, the offline queue on), as most users have them.
    const cutClient = new Redis(`redis://127.0.0.1:${proxy.port}`);
    cutClient.on('error', () => {});
    const healthyClient = new Redis(redisUrl);
    clients.push(cutClient, healthyClient);
    const options = {
      prefix,
      operationTimeoutMs: 200,
      breaker: { consecutiveFailures: 2, halfOpenAfterMs: 200 },
    };
    const cut = new Cache({ ...options, redis: cutClient });
    const healthy = new Cache({ ...options, redis: healthyClient });
    caches.push(cut, healthy);
    await Promise.all([cut.ready(), healthy.ready()]);
    await cut.set('price', 'v0');

    proxy.sever();
    // Once ioredis knows the connection is gone (a write in flight at that moment is another
    // matter: ioredis resends those, see the README's failure modes).
    // (Read through a function: TypeScript would keep the status narrowed past the loop.)
    const status = (): string => cutClient.status;
    while (status() === 'ready') await delay(5);
    // The cut instance's write fails (degraded: served from its L1 only, recorded as lost).
    await cut.set('price', 'stale, written while cut off');
    // Later, the healthy instance writes the key, and Redis has it.
    await healthy.set('price', 'v2, written later');
    expect(await healthyClient.exists(`${prefix}v:price`)).toBe(1);

    proxy.mend();
    // The cut instance reconnects; its breaker closes and its lost write is announced again.
    const until = Date.now() + 15_000;
    while (Date.now() < until && (status() !== 'ready' || cut.stats().l2 !== 'closed')) {
      await cut.get('probe');
      await delay(100);
    }
    expect(status()).toBe('ready');
    await delay(1_500);
    // ioredis held the failed SET in its offline queue and sent it on reconnecting, over v2.
    const reader = new Cache({ prefix, redis: healthyClient, bus: false });
    caches.push(reader);
    expect(await reader.get('price')).toBe('v2, written later');
  });
});

describe
  .skipIf(!redisServerInstalled('a private Redis Cluster'))
  .concurrent(
    'on a 3-master Cluster, one master cut off from one instance while its client stays ready',
    () => {
      const prefix = 'cm_cut_cluster:';
      let cluster: PrivateRedisCluster | undefined;
      let proxy: TcpProxy | undefined;
      const clients: Cluster[] = [];
      const caches: Cache[] = [];
      afterAll(async () => {
        await Promise.all(caches.map((cache) => cache.close()));
        for (const client of clients) client.disconnect();
        await proxy?.close();
        await cluster?.stop();
      });
      const ready = async (client: Cluster) => {
        client.on('error', () => {});
        clients.push(client);
        await new Promise<void>((resolve) => client.once('ready', () => resolve()));
        return client;
      };

      it('does not send, once the master is reachable again, a write that failed while it was cut, over a later write', async () => {
        cluster = await startRedisCluster(3);
        const healthyClient = await ready(new Cluster(cluster.nodes));
        const slot = Number(await healthyClient.cluster('KEYSLOT', `${prefix}v:price`));
        const owner = healthyClient.slots[slot]![0]!;
        proxy = await startTcpProxy(`redis://${owner}`);
        // The cut instance reaches the key's master through the proxy (ioredis's defaults otherwise).
        const others = cluster.nodes.filter(({ port }) => `127.0.0.1:${port}` !== owner);
        const cutClient = await ready(
          new Cluster(others, {
            natMap: { [owner]: { host: '127.0.0.1', port: proxy.port } },
            retryDelayOnFailover: 0,
          }),
        );
        const loggers = new Map<Cluster, RecordingLogger>();
        const recording = (client: Cluster) => {
          loggers.set(client, recordingLogger());
          return loggers.get(client)!;
        };
        const options = { prefix, operationTimeoutMs: 200, breaker: { consecutiveFailures: 1_000 } };
        const cut = new Cache({ ...options, redis: cutClient, logger: recording(cutClient) });
        const healthy = new Cache({ ...options, redis: healthyClient, logger: recording(healthyClient) });
        // ioredis's default (retryDelayOnFailover 100 ms, 16 redirections) is named, with the fix;
        // the test's cut client has the fix (without it, this test fails: the late write lands).
        const resends = (client: Cluster) =>
          loggers
            .get(client)!
            .messages('warn')
            .filter((message) => message.includes('retryDelayOnFailover: 0'));
        expect(resends(healthyClient)).toHaveLength(1);
        expect(resends(cutClient)).toEqual([]);
        caches.push(cut, healthy);
        await Promise.all([cut.ready(), healthy.ready()]);
        await cut.set('price', 'v0');
        expect(await healthy.get('price')).toBe('v0');

        proxy.sever();
        // Its write fails within the deadline and is recorded as lost; the Cluster client stays ready.
        await cut.set('price', 'stale, written while cut off');
        expect(cutClient.status).toBe('ready');
        await healthy.set('price', 'v2, written later');
        proxy.mend();
        // ioredis retries a command whose node connection closed every retryDelayOnFailover
        // (200 ms), up to maxRedirections (16) times: well past here.
        await delay(3_500);
        const reader = new Cache({ prefix, redis: healthyClient, bus: false });
        caches.push(reader);
        expect(await reader.get('price')).toBe('v2, written later');
      });
    },
  );
