import type { Logger } from '@noa/core';
import { recordingLogger } from '@noa/testkit';
import { Cluster, Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { RedisStore, recommendedClusterOptions, recommendedRedisOptions } from '../src/redis.js';

/** The warnings a store logs at construction for `client` (never connected: lazyConnect). */
function warningsFor(client: Redis | Cluster, prefix?: string): string[] {
  const logger = recordingLogger();
  new RedisStore(prefix === undefined ? { client, logger } : { client, logger, prefix });
  client.disconnect();
  return logger.messages('warn');
}

describe('RedisStore client option warnings', () => {
  const nodes = [{ host: '127.0.0.1', port: 1 }];

  it('none for the recommended options', () => {
    expect(warningsFor(new Redis({ ...recommendedRedisOptions, lazyConnect: true }))).toEqual([]);
    expect(warningsFor(new Cluster(nodes, { ...recommendedClusterOptions, lazyConnect: true }))).toEqual([]);
  });

  it('names the recommended options for the kind of client that queues while disconnected', () => {
    expect(warningsFor(new Redis({ lazyConnect: true }))).toEqual([
      expect.stringContaining('use recommendedRedisOptions'),
    ]);
    expect(warningsFor(new Cluster(nodes, { lazyConnect: true }))).toEqual([
      expect.stringContaining('queues commands while disconnected; use recommendedClusterOptions'),
      expect.stringContaining('retryDelayOnFailover'),
    ]);
  });

  it('warns against auto-pipelining on a Cluster (redirections would fail checks)', () => {
    const client = new Cluster(nodes, {
      ...recommendedClusterOptions,
      enableAutoPipelining: true,
      lazyConnect: true,
    });
    expect(warningsFor(client)).toEqual([expect.stringContaining('enableAutoPipelining')]);
  });

  it('warns about a Sentinel client without failoverDetector (it stays on a failed-over master ~10 s, losing counts)', () => {
    const sentinels = [{ host: '127.0.0.1', port: 1 }];
    const { failoverDetector: _, ...withoutDetector } = recommendedRedisOptions;
    const client = new Redis({ sentinels, name: 'mymaster', ...withoutDetector, lazyConnect: true });
    expect(warningsFor(client)).toEqual([expect.stringContaining('failoverDetector: true')]);
    expect(
      warningsFor(new Redis({ sentinels, name: 'mymaster', ...recommendedRedisOptions, lazyConnect: true })),
    ).toEqual([]);
  });

  it("warns when a Cluster resends a command whose master went away after running it (ioredis's default)", () => {
    const client = new Cluster(nodes, {
      ...recommendedClusterOptions,
      retryDelayOnFailover: 100,
      lazyConnect: true,
    });
    expect(warningsFor(client)).toEqual([expect.stringContaining('retryDelayOnFailover > 0')]);
  });
  it('warns once that a whole hash tag in the prefix or keyPrefix puts every key on one master of a Cluster', () => {
    // As ioredis and BullMQ tell their users: a tag before the store's own `{<key>}` is the one
    // Redis hashes, so every key lands in its slot. It works (tested on a real Cluster by
    // integration/cluster-hash-tag-prefix.test.ts); the load no longer spreads.
    const cluster = (keyPrefix?: string) =>
      new Cluster(nodes, {
        ...recommendedClusterOptions,
        ...(keyPrefix === undefined ? {} : { keyPrefix }),
        lazyConnect: true,
      });
    expect(warningsFor(cluster(), '{app}:')).toEqual([expect.stringContaining('hash tag "{app}"')]);
    expect(warningsFor(cluster('{tenant}:'))).toEqual([expect.stringContaining('hash tag "{tenant}"')]);
    // Braces that make no whole tag before the store's own leave the keys spread: no warning.
    expect(warningsFor(cluster(), 'a{:')).toEqual([]);
    expect(warningsFor(cluster(), 'a}{:')).toEqual([]);
    expect(warningsFor(cluster(), 'noa:rl:')).toEqual([]);
    // Standalone Redis has no slots.
    expect(warningsFor(new Redis({ ...recommendedRedisOptions, lazyConnect: true }), '{app}:')).toEqual([]);
  });
});

describe('RedisStore with a logger that throws', () => {
  // A logger is the application's code: its throw must not fail the store's construction (or,
  // later, a breaker transition on a timer). Lines are dropped with one process warning.
  it('is constructed and its warning dropped', () => {
    const logger: Logger = {
      debug: () => {},
      info: () => {},
      warn: () => {
        throw new Error('log transport down');
      },
      error: () => {},
    };
    const client = new Redis({ lazyConnect: true });
    expect(() => new RedisStore({ client, logger })).not.toThrow();
    client.disconnect();
  });
});
