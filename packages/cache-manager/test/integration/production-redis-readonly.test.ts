import { delay } from '@noa/core';
import { generousDeadlineMs, startPrivateRedisOrSkip } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { BackendUnavailableError, Cache } from '../../src/index.js';
import { observingEvalsha } from './evalsha-observer.js';

// A client left on a node that became a replica (a managed Redis failed over behind one DNS
// name, the old primary demoted while connections to it stay open): reads answer, every write
// fails with READONLY. The cache degrades as on any failed write, keeps hearing the master's
// invalidations (PUBLISH reaches a replica's subscribers through replication), and writes
// again once the node is a master (or the client reconnects to one: ioredis's
// `reconnectOnError`, see README "Production Redis").

const { redis: master, skip } = await startPrivateRedisOrSkip();
const { redis: replica } = skip ? { redis: undefined } : await startPrivateRedisOrSkip();

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(25);
  }
}

describe.skipIf(skip !== undefined)('the cache on a node demoted to a replica (READONLY)', () => {
  const clients: Redis[] = [];
  const caches: Cache[] = [];
  const admin = new Redis(replica?.url ?? 'redis://127.0.0.1:1', { lazyConnect: true });
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
    for (const client of clients) client.disconnect();
    admin.disconnect();
    await Promise.all([master?.stop(), replica?.stop()]);
  });
  function open(
    url: string,
    options: Partial<ConstructorParameters<typeof Cache>[0]> = {},
    observe?: (sha: string, firstKey: string) => void,
  ): Cache {
    const client = new Redis(url);
    client.on('error', () => {});
    clients.push(client);
    const cache = new Cache({
      redis: observe ? observingEvalsha(client, observe) : client,
      prefix: 'ro:',
      breaker: { halfOpenAfterMs: 200 },
      operationTimeoutMs: generousDeadlineMs,
      ...options,
    });
    caches.push(cache);
    return cache;
  }

  it('serves, throws nothing by default, hears the master, and writes again once promoted', async () => {
    await admin.replicaof('127.0.0.1', master!.port);
    await until(
      async () => String(await admin.info('replication')).includes('master_link_status:up'),
      'the link',
    );
    const onMaster = open(master!.url);
    const onReplica = open(replica!.url);
    const strict = open(replica!.url, { onBackendError: 'throw' });
    await Promise.all([onMaster.ready(), onReplica.ready(), strict.ready()]);

    await onMaster.set('kept', { v: 1 });
    await until(async () => (await admin.exists('ro:v:kept')) === 1, 'replication');
    expect(await onReplica.get('kept')).toEqual({ v: 1 });

    // Writes fail with READONLY: served from L1, nothing thrown, not in L2.
    await onReplica.set('new', { v: 2 });
    expect(await onReplica.get('new')).toEqual({ v: 2 });
    let runs = 0;
    expect(
      await onReplica.getOrSet('computed', () => {
        runs += 1;
        return { v: 3 };
      }),
    ).toEqual({ v: 3 });
    expect(runs).toBe(1);
    expect(await admin.exists('ro:v:new', 'ro:v:computed')).toBe(0);
    expect(onReplica.health().status).toBe('degraded');
    const error = await strict.set('strict', 1).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect(String((error as Error).cause)).toMatch(/READONLY/);

    // The master's invalidations still reach it: its copy of `kept` goes.
    await onMaster.set('kept', { v: 4 });
    await until(
      async () => (await onReplica.get<{ v: number }>('kept'))?.v === 4,
      'the master’s invalidation',
    );

    // Promoted: writes reach L2 again (at the breaker's next probe).
    await admin.replicaof('NO', 'ONE');
    await until(async () => {
      await onReplica.set('after', { v: 5 });
      return (await admin.exists('ro:v:after')) === 1;
    }, 'writes to land after the promotion');
    expect(onReplica.health().status).toBe('up');
  }, 30_000);

  it('a lease the node refused is not released: the refusal proves it never landed', async () => {
    await admin.replicaof('127.0.0.1', master!.port);
    await until(
      async () => String(await admin.info('replication')).includes('master_link_status:up'),
      'the link',
    );
    const releases: string[] = [];
    const cache = open(replica!.url, { prefix: 'ro-lease:' }, (_sha, firstKey) => {
      if (firstKey.includes('__lease:')) releases.push(firstKey);
    });
    await cache.ready();
    let runs = 0;
    for (const key of ['a', 'b', 'c'])
      expect(
        await cache.getOrSet(key, () => {
          runs += 1;
          return key;
        }),
      ).toBe(key);
    expect(runs).toBe(3);
    expect(releases).toEqual([]);
    await admin.replicaof('NO', 'ONE');
  }, 30_000);
});
