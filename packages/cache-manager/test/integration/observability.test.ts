import { Writable } from 'node:stream';
import { startPrivateRedisOrSkip } from '@noa/testkit';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import winston from 'winston';
import { Cache, type CacheOptions } from '../../src/index.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

/** A winston logger as an app makes one (JSON lines to a stream), and the lines it wrote. */
function winstonLogger(): { logger: winston.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(JSON.parse(line));
      done();
    },
  });
  const logger = winston.createLogger({
    level: 'debug',
    format: winston.format.json(),
    transports: [new winston.transports.Stream({ stream })],
  });
  return { logger, lines };
}

/** The README's metrics table: name → type and label names (as test/metrics.test.ts reads it). */
async function readmeMetricNames(): Promise<string[]> {
  const { readFileSync } = await import('node:fs');
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(
    readme.indexOf('\n## Metrics\n'),
    readme.indexOf('\n## Stats without prom-client'),
  );
  return [...section.matchAll(/^\| `(noa_cache_manager_[a-z_]+)`/gm)].map((match) => match[1]!);
}

/**
 * Every series on the registry: its metric name and label values. Those of `prune_tag` (a tag
 * set's pruning, drawn for 1 tag write in 16) are left out: whether a run of the workload drew
 * one is chance, not its size, and the label value is one, however many tags.
 */
async function series(
  registry: Registry,
): Promise<Array<{ name: string; labels: Record<string, string | number> }>> {
  const all: Array<{ name: string; labels: Record<string, string | number> }> = [];
  for (const metric of await registry.getMetricsAsJSON()) {
    for (const value of metric.values) {
      if ((value.labels as Record<string, unknown>).operation === 'prune_tag') continue;
      all.push({
        name: (value as { metricName?: string }).metricName ?? metric.name,
        labels: value.labels as Record<string, string | number>,
      });
    }
  }
  return all;
}

/** The sum of one metric's samples whose labels include `labels`. */
async function total(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((candidate) => candidate.name === name);
  let sum = 0;
  for (const value of metric?.values ?? []) {
    const own = value.labels as Record<string, string | number>;
    if (Object.entries(labels).every(([label, wanted]) => own[label] === wanted)) sum += value.value;
  }
  return sum;
}

describe.skipIf(!redisUp)(
  'metrics and logger, injected (prom-client Registry, winston) on a real Redis',
  () => {
    const prefix = testPrefix('cm_observability');
    const clients: Redis[] = [];
    const caches: Cache[] = [];
    const open = async (options: CacheOptions) => {
      const client = new Redis(redisUrl);
      clients.push(client);
      const cache = new Cache({ redis: client, prefix, ...options });
      caches.push(cache);
      await cache.ready();
      return cache;
    };
    afterAll(async () => {
      await Promise.all(caches.map((cache) => cache.close()));
      for (const client of clients) client.disconnect();
      await dropPrefix(prefix);
    });

    /** A workload over `count` distinct keys, tags and namespaces, on both caches. */
    async function workload(sessions: Cache, catalogue: Cache, run: string, count: number): Promise<void> {
      for (let index = 0; index < count; index += 1) {
        const key = `user-${run}-${index}`;
        const tag = `tag-${run}-${index}`;
        const view = catalogue.namespace(`ns-${run}-${index}`);
        await sessions.set(key, { index }, { tags: [tag] });
        await sessions.get(key);
        await sessions.get(`${key}-absent`);
        await view.getOrSet(key, async () => index, { tags: [tag] });
        await view.getOrSet(key, async () => index);
        await view
          .getOrSet(`${key}-fails`, async () => {
            throw new Error(`source down for ${key}`);
          })
          .catch(() => {});
        await catalogue.getMany([key, `${key}-absent`]);
        await sessions.expireByTag(tag);
        await sessions.deleteByTag(tag);
        await view.delete(key);
      }
    }

    it('two named caches on one registry, with a winston logger: every README metric, bounded labels, lines with fields', async () => {
      const documented = await readmeMetricNames();
      expect(documented.length).toBe(15);
      const label = async (count: number, run: string) => {
        const registry = new Registry();
        const { logger } = winstonLogger();
        // A winston Logger is the `logger` option as is: no adapter (this file type-checks).
        const sessions = await open({ registry, logger, name: 'sessions', l1: { maxEntries: 3 } });
        const catalogue = await open({ registry, logger, name: 'catalogue' });
        // The other instance: its bus messages reach both (bus_messages_total received).
        const other = await open({ name: 'other' });
        await workload(sessions, catalogue, run, count);
        await other.set(`user-${run}-from-other`, 1);
        await other.delete(`user-${run}-from-other`);
        // Messages are applied on the readers' loops: wait for the last one.
        const deadline = Date.now() + 5_000;
        while (
          Date.now() < deadline &&
          (await total(registry, 'noa_cache_manager_bus_messages_total', {
            cache: 'sessions',
            direction: 'received',
          })) < 2
        )
          await new Promise((resolve) => setTimeout(resolve, 10));
        return { registry, sessions, catalogue };
      };
      // Both past 64 L1 lookups per cache (one in 64 is timed), so the same series can exist.
      const small = await label(40, 'a');
      const large = await label(120, 'b');

      for (const { registry } of [small, large]) {
        const names = new Set((await registry.getMetricsAsJSON()).map((metric) => metric.name));
        expect([...names].filter((name) => name.startsWith('noa_cache_manager_')).sort()).toEqual(
          [...documented].sort(),
        );
        for (const metric of await registry.getMetricsAsJSON())
          expect(metric.help.length, metric.name).toBeGreaterThan(10);
      }

      // Each cache's series under its own `cache` label, and only the documented label values.
      const documentedValues: Record<string, readonly string[]> = {
        cache: ['sessions', 'catalogue'],
        tier: ['l1', 'l2'],
        result: ['hit', 'miss', 'stale', 'ok', 'error', 'value', 'acquired', 'timeout'],
        reason: [
          'factory_error',
          'soft_timeout',
          'hard_timeout',
          'lock_timeout',
          'evicted',
          'expired',
          'too_large',
        ],
        kind: ['circuit_open', 'timeout', 'error', 'skipped'],
        direction: ['sent', 'received'],
        state: ['closed', 'open', 'half_open'],
      };
      const valuesOf = async (registry: Registry) => {
        const values = new Map<string, Set<string>>();
        for (const { labels } of await series(registry)) {
          for (const [name, value] of Object.entries(labels)) {
            if (name === 'le') continue;
            const set = values.get(name) ?? new Set<string>();
            set.add(String(value));
            values.set(name, set);
          }
        }
        return values;
      };
      const smallValues = await valuesOf(small.registry);
      const largeValues = await valuesOf(large.registry);
      for (const [name, values] of largeValues) {
        for (const value of values) {
          // No key, tag, namespace or error text: those grow with the traffic.
          expect(value, `${name}=${value}`).not.toMatch(/user-|tag-|ns-|source down/);
          if (documentedValues[name]) expect(documentedValues[name], `${name}=${value}`).toContain(value);
          else {
            expect(name).toBe('operation');
            // One of the cache's own call names, snake_case as every label value (decision 012).
            expect(value).toMatch(/^[a-z]+(_[a-z]+)*$/);
          }
        }
      }
      // Cardinality does not grow with the keys, tags and namespaces: 120 of each, as 40.
      expect([...largeValues.keys()].sort()).toEqual([...smallValues.keys()].sort());
      for (const [name, values] of largeValues)
        expect([...values].sort(), name).toEqual([...smallValues.get(name)!].sort());
      const ids = async (registry: Registry) =>
        new Set((await series(registry)).map(({ name, labels }) => `${name}${JSON.stringify(labels)}`));
      const smallIds = await ids(small.registry);
      const largeIds = await ids(large.registry);
      expect([...largeIds].filter((id) => !smallIds.has(id))).toEqual([]);
      expect(largeIds.size).toBe(smallIds.size);

      // They moved as documented: per cache, hits and misses per tier, a failed factory run, bus messages.
      const { registry, sessions, catalogue } = large;
      const requests = 'noa_cache_manager_requests_total';
      expect(await total(registry, requests, { cache: 'sessions', tier: 'l1', result: 'hit' })).toBe(
        sessions.stats().hits.l1,
      );
      expect(await total(registry, requests, { cache: 'catalogue', tier: 'l1', result: 'hit' })).toBe(
        catalogue.stats().hits.l1,
      );
      expect(
        await total(registry, 'noa_cache_manager_factory_runs_total', {
          cache: 'catalogue',
          result: 'error',
        }),
      ).toBe(120);
      expect(await total(registry, 'noa_cache_manager_factory_runs_total', { cache: 'sessions' })).toBe(0);
      expect(
        await total(registry, 'noa_cache_manager_bus_messages_total', {
          cache: 'sessions',
          direction: 'sent',
        }),
      ).toBeGreaterThan(0);
      expect(
        await total(registry, 'noa_cache_manager_evictions_total', {
          cache: 'sessions',
          tier: 'l1',
          reason: 'evicted',
        }),
      ).toBe(sessions.stats().evictions.evicted);
      expect(
        await total(registry, 'noa_cache_manager_written_bytes_total', { cache: 'sessions', tier: 'l2' }),
      ).toBeGreaterThan(0);
      expect(await total(registry, 'noa_cache_manager_entries', { cache: 'sessions', tier: 'l1' })).toBe(
        sessions.stats().l1.entries,
      );
      expect(
        await total(registry, 'noa_cache_manager_breaker_state', { cache: 'catalogue', state: 'closed' }),
      ).toBe(1);
    });
  },
);

const started = await startPrivateRedisOrSkip();

describe.skipIf(started.skip !== undefined)('a winston logger while Redis fails', () => {
  it('gets the breaker and failure warnings with their fields, one failure warning per logIntervalMs', async () => {
    const server = started.redis!;
    const { logger, lines } = winstonLogger();
    const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
    client.on('error', () => {});
    const cache = new Cache({
      redis: client,
      logger,
      bus: false,
      operationTimeoutMs: 200,
      logIntervalMs: 60_000,
      breaker: { consecutiveFailures: 3, halfOpenAfterMs: 60_000 },
    });
    try {
      await cache.ready();
      await cache.set('k', 1);
      await server.kill();
      for (let call = 0; call < 6; call += 1) await cache.get(`absent-${call}`);
      const failures = lines.filter((line) => line.message === 'redis operation failed; serving from L1');
      // One per interval however many calls failed, with the operation and error as fields.
      expect(failures).toHaveLength(1);
      expect(failures[0]).toMatchObject({ level: 'warn', component: 'cache-manager', operation: 'get' });
      expect(typeof failures[0]!.error).toBe('string');
      const opened = lines.filter((line) => line.message === 'redis circuit breaker open');
      expect(opened).toEqual([
        expect.objectContaining({ level: 'warn', component: 'cache-manager', state: 'open' }),
      ]);
    } finally {
      await cache.close();
      client.disconnect();
      await server.stop();
    }
  });
});
