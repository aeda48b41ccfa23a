import { generousDeadlineMs, uniqueName } from '@noa/testkit';
import type { Cluster, Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { Cache, type CacheOptions } from '../../src/index.js';
import { pruneTagsWithChance } from '../../src/l2/tag-pruning.js';
import { redisUp, sharedRedisCaches } from './helpers.js';
import { usePrivateCluster } from './redis-server.js';

/**
 * A tag set names every key written with the tag; a member whose value expired or was deleted
 * one by one (not by deleteByTag) stayed until the whole set expired, which it never did while
 * the tag was written to. Tagged writes now prune a random sample of the set now and then
 * (see docs/tags.md): the set stays within a bound proportional to the live keys.
 *
 * The bound asserted: SCARD ≤ 2 × live keys + 64. The expected size is about 4/3 of the live
 * keys (each tag write prunes with probability 1/16 a sample of 64, so dead members settle at
 * about a third of the live ones); without pruning the set names every key ever written.
 */
const LIVE = 100;
const WRITES = 3_000;
const bound = (live: number) => 2 * live + 64;

/** Members of `tagKey` whose value key exists. */
async function liveMembers(admin: Redis | Cluster, prefix: string, tagKey: string): Promise<number> {
  const members = await admin.smembers(tagKey);
  let live = 0;
  for (const member of members) live += await admin.exists(`${prefix}v:${member}`);
  return live;
}

/** The value of one sample line, 0 when the series does not exist. */
async function sample(registry: Registry, series: string): Promise<number> {
  const line = (await registry.metrics()).split('\n').find((text) => text.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/**
 * Writes {@link WRITES} keys tagged `tag`, deleting each one {@link LIVE} writes later
 * (`delete`, which leaves the tag set alone): {@link LIVE} keys live at any time.
 */
async function churn(cache: Cache, tag: string): Promise<void> {
  for (let index = 0; index < WRITES; index += 1) {
    await cache.set(`${tag}:${index}`, index, { tags: [tag] });
    if (index >= LIVE) await cache.delete(`${tag}:${index - LIVE}`);
  }
}

describe.skipIf(!redisUp)('tag sets stay bounded while the tag is written (Redis)', () => {
  const { prefix, redis, open } = sharedRedisCaches('tagprune');

  it('keys deleted one by one leave the set', async () => {
    const registry = new Registry();
    const logged: string[] = [];
    const cache = await open({
      registry,
      logger: {
        debug: (message) => logged.push(message),
        info: () => {},
        warn: () => {},
        error: () => {},
      },
    });
    await churn(cache, 'deleted');
    const tagKey = `${prefix}__tag:deleted`;
    expect(await liveMembers(redis!, prefix, tagKey)).toBe(LIVE);
    expect(await redis!.scard(tagKey)).toBeLessThanOrEqual(bound(LIVE));
    const pruned = await sample(registry, 'noa_cache_manager_tag_members_pruned_total{cache="cache"}');
    expect(pruned).toBeGreaterThanOrEqual(WRITES - bound(LIVE));
    expect(logged.filter((message) => message.startsWith('tag set pruned')).length).toBeGreaterThan(0);
    // deleteByTag still reaches every live key.
    expect(await cache.deleteByTag('deleted')).toBe(LIVE);
    expect(await redis!.exists(`${prefix}v:deleted:${WRITES - 1}`)).toBe(0);
  }, 60_000);

  it('keys that expire leave the set', async () => {
    const cache = await open({ graceMs: 0 });
    const tag = 'expiring';
    // A key that lives on keeps the set alive (its expiry is its longest member's), as a tag in
    // use does; then rounds of LIVE keys that expire before the next round: at most LIVE + 1
    // keys live at any time.
    await cache.set('anchor', 0, { tags: [tag], ttlMs: 600_000 });
    const rounds = WRITES / LIVE;
    for (let round = 0; round < rounds; round += 1) {
      for (let index = 0; index < LIVE; index += 1)
        await cache.set(`${tag}:${round}:${index}`, index, { tags: [tag], ttlMs: 50 });
      const last = `${prefix}v:${tag}:${round}:${LIVE - 1}`;
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && (await redis!.exists(last)) === 1)
        await new Promise((resolve) => setTimeout(resolve, 5));
    }
    // One more round: the prunes it draws find the last round's keys expired.
    for (let index = 0; index < LIVE; index += 1)
      await cache.set(`${tag}:last:${index}`, index, { tags: [tag], ttlMs: 600_000 });
    expect(await redis!.scard(`${prefix}__tag:${tag}`)).toBeLessThanOrEqual(bound(LIVE + 1));
    expect(await redis!.sismember(`${prefix}__tag:${tag}`, 'anchor')).toBe(1);
  }, 60_000);

  it('a key that lives on stays in the set, whatever the sample', async () => {
    const cache = await open();
    await cache.set('kept', 1, { tags: ['mixed'] });
    await churn(cache, 'mixed');
    expect(await redis!.sismember(`${prefix}__tag:mixed`, 'kept')).toBe(1);
  }, 60_000);

  it('a prune that fails never fails the write that started it', async () => {
    const { Redis } = await import('ioredis');
    const base = new Redis(redis!.options);
    // SRANDMEMBER, the prune's first command, always fails.
    const client = new Proxy(base, {
      get(target, property) {
        const value = Reflect.get(target, property);
        if (property === 'srandmember') return () => Promise.reject(new Error('refused'));
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const cache = await open({ redis: client });
    for (let index = 0; index < 200; index += 1)
      await cache.set(`failing:${index}`, index, { tags: ['failing'] });
    const keys = Array.from({ length: 200 }, (_, index) => `${prefix}v:failing:${index}`);
    expect(await redis!.exists(...keys)).toBe(200);
    expect(await redis!.scard(`${prefix}__tag:failing`)).toBe(200);
    // The prunes were tried (about one write in 16), failed, and were counted as Redis errors.
    expect(cache.stats().l2Errors).toBeGreaterThan(0);
    await cache.close();
    base.disconnect();
  }, 60_000);
});

const { installed, client: cluster } = usePrivateCluster('tag sets pruned on a Redis Cluster');

describe.skipIf(!installed)('tag sets stay bounded while the tag is written (Redis Cluster)', () => {
  const prefix = `${uniqueName('cm_tagprune_cluster')}:`;
  const caches: Cache[] = [];
  afterAll(async () => {
    await Promise.all(caches.map((cache) => cache.close()));
  });
  async function open(options: CacheOptions = {}): Promise<Cache> {
    const cache = new Cache({ redis: cluster(), prefix, ...options });
    caches.push(cache);
    await cache.ready();
    return cache;
  }

  it('keys deleted one by one leave the set', async () => {
    const cache = await open();
    await churn(cache, 'deleted');
    const tagKey = `${prefix}__tag:deleted`;
    expect(await liveMembers(cluster(), prefix, tagKey)).toBe(LIVE);
    expect(await cluster().scard(tagKey)).toBeLessThanOrEqual(bound(LIVE));
    expect(await cache.deleteByTag('deleted')).toBe(LIVE);
  }, 120_000);

  /**
   * The set and the values live on other masters, so a prune removes the dead members it found
   * (SREM) and then checks them again, adding back those written meanwhile. Here the member is
   * written again (SET, then SADD) between the prune's check and its SREM, every time: the SREM
   * is held until that write is done. Without the second check the value stayed out of its set.
   */
  it('a member written again between the check and the SREM is added back', async () => {
    // The writer's own set must not draw a prune: one running while the victim is deleted could
    // remove it from the set on the writer's client, unseen here (with the default 1-in-16 chance
    // a CI run once never intercepted it). Then every landed write of the pruner draws one (one per
    // tag at a time), and no deadline of a loaded machine opens the breaker (which skips prunes):
    // its first prunes sample the few members, 'victim' among them.
    pruneTagsWithChance(0);
    onTestFinished(() => pruneTagsWithChance(undefined));
    const writer = await open({ operationTimeoutMs: generousDeadlineMs });
    await writer.set('victim', 'old', { tags: ['race'] });
    await writer.delete('victim');
    pruneTagsWithChance(1);
    let intercepted = false;
    const client = new Proxy(cluster(), {
      get(target, property) {
        const value = Reflect.get(target, property);
        if (typeof value !== 'function') return value;
        const call = (...args: unknown[]) => (value as (...all: unknown[]) => unknown).apply(target, args);
        if (property !== 'srem') return call;
        return async (...args: unknown[]) => {
          if (!intercepted && String(args[0]).endsWith('__tag:race') && args.includes('victim')) {
            intercepted = true;
            await writer.set('victim', 'new', { tags: ['race'] });
          }
          return call(...args);
        };
      },
    });
    let pruned = false;
    const pruner = await open({
      redis: client,
      operationTimeoutMs: generousDeadlineMs,
      logger: {
        // The prune's debug line comes once it is done, re-check and SADD included.
        debug: (message, fields) => {
          if (intercepted && message === 'tag set pruned' && fields?.tag === 'race') pruned = true;
        },
        info: () => {},
        warn: () => {},
        error: () => {},
      },
    });
    for (let index = 0; index < 2_000 && !intercepted; index += 1)
      await pruner.set(`filler:${index}`, index, { tags: ['race'] });
    expect(intercepted).toBe(true);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !pruned) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(pruned).toBe(true);
    const tagKey = `${prefix}__tag:race`;
    expect(await cluster().sismember(tagKey, 'victim')).toBe(1);
    expect(await pruner.deleteByTag('race')).toBeGreaterThan(1);
    expect(await cluster().exists(`${prefix}v:victim`)).toBe(0);
  }, 60_000);
});
