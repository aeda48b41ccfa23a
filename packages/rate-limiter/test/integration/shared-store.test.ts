import type { AddressInfo } from 'node:net';
import { ConfigError } from '@noa/core';
import { awayFromWindowEdge, isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import express from 'express';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expressRateLimit } from '../../src/express.js';
import { algorithmNames, createRateLimiter, type LimitInput } from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';
import { targetConnection } from './redis-fixture.js';
import { targets } from './redis-targets.js';

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);

const global: LimitInput = { limit: 100, windowMs: 60_000 };
const login: LimitInput = { algorithm: 'token-bucket', limit: 3, windowMs: 900_000 };

// Two processes on one Redis, each with its limiter and the default prefix `rl`: stood in for by
// two clients (the in-process check cannot see the other process). Each limit keeps its own state.
describe.skipIf(skip !== undefined)('limiters of two processes with one prefix on one Redis', () => {
  const clients: Redis[] = [];
  const client = () => {
    const made = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
    clients.push(made);
    return made;
  };
  afterAll(async () => {
    await Promise.all(clients.map((made) => made.quit()));
  });

  it('global 100/min + login token bucket 3/15 min over HTTP: the 4th login is 429', async () => {
    const storePrefix = `${uniqueName('rlshared')}:`;
    const api = createRateLimiter({
      limits: [global],
      store: new RedisStore({ client: client(), prefix: storePrefix }),
      deadlineMs: 5_000,
    });
    const logins = createRateLimiter({
      limits: [login],
      store: new RedisStore({ client: client(), prefix: storePrefix }),
      deadlineMs: 5_000,
    });
    const app = express();
    app.use(expressRateLimit({ limiter: api, keyBy: 'ip' }));
    app.post('/login', expressRateLimit({ limiter: logins, keyBy: 'ip' }), (_req, res) => {
      res.send('ok');
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const statuses: number[] = [];
      const policies: (string | null)[] = [];
      for (let index = 0; index < 6; index += 1) {
        const response = await fetch(`${base}/login`, { method: 'POST' });
        statuses.push(response.status);
        policies.push(response.headers.get('ratelimit'));
        await response.arrayBuffer();
      }
      expect(statuses).toEqual([200, 200, 200, 429, 429, 429]);
      for (const header of policies) expect(header).not.toMatch(/NaN/);
      // The global limit counted its own six requests (and this one), nothing of the login's.
      const other = await fetch(`${base}/other`);
      await other.arrayBuffer();
      expect(other.headers.get('ratelimit')).toMatch(/^"default";r=93;t=\d+$/);
    } finally {
      await new Promise((resolve) => server.close(() => resolve(undefined)));
      await Promise.all([api.close(), logins.close()]);
    }
  });

  it.each(
    algorithmNames.flatMap((first) =>
      algorithmNames.filter((second) => second !== first).map((second) => [first, second] as const),
    ),
  )('a %s limit beside a %s one on the same key: each counts alone', async (first, second) => {
    const storePrefix = `${uniqueName('rlpair')}:`;
    const wide = createRateLimiter({
      limits: [{ algorithm: first, limit: 100, windowMs: 60_000 }],
      store: new RedisStore({ client: client(), prefix: storePrefix }),
      deadlineMs: 5_000,
    });
    const narrow = createRateLimiter({
      limits: [{ algorithm: second, limit: 3, windowMs: 60_000 }],
      store: new RedisStore({ client: client(), prefix: storePrefix }),
      deadlineMs: 5_000,
    });
    // The fourth check is refused, and the wide limit counts 4, within the minute the first opened.
    await awayFromWindowEdge(60_000, 3_000);
    try {
      const allowed: boolean[] = [];
      for (let index = 0; index < 4; index += 1) {
        expect((await wide.check('k')).allowed).toBe(true);
        const result = await narrow.check('k');
        expect(result.source).toBe('store');
        expect(Number.isFinite(result.remaining)).toBe(true);
        allowed.push(result.allowed);
      }
      expect(allowed).toEqual([true, true, true, false]);
      const wideState = await wide.peek('k');
      expect(wideState.source).toBe('store');
      expect(wideState.remaining).toBe(96);
    } finally {
      await Promise.all([wide.close(), narrow.close()]);
    }
  });
});

for (const target of targets)
  describe.skipIf(skip !== undefined)(`limiters on one ${target.name} client`, () => {
    const connection = targetConnection(target);
    let storePrefix: string;
    beforeAll(() => {
      storePrefix = `${uniqueName('rlclaim')}:`;
    });

    it('refuse a second limiter with other limits under the same prefix (two RedisStores, one client)', async () => {
      const store = () => new RedisStore({ client: connection.client, prefix: storePrefix });
      const api = createRateLimiter({ limits: [global], store: store(), deadlineMs: 5_000 });
      expect(() => createRateLimiter({ limits: [login], store: store(), deadlineMs: 5_000 })).toThrow(
        ConfigError,
      );
      // Another store prefix on the client is other keys: no conflict.
      const apart = createRateLimiter({
        limits: [login],
        store: new RedisStore({ client: connection.client, prefix: `${storePrefix}apart:` }),
        deadlineMs: 5_000,
      });
      await Promise.all([api.close(), apart.close()]);
    });

    it('keep each policy’s counters apart across a reload that changes the algorithm', async () => {
      const store = new RedisStore({ client: connection.client, prefix: `${storePrefix}reload:` });
      const window = () => createRateLimiter({ limits: [global], store, deadlineMs: 5_000 });
      const first = window();
      for (let index = 0; index < 5; index += 1) expect((await first.check('k')).source).toBe('store');
      await first.close();
      const bucket = createRateLimiter({ limits: [login], store, deadlineMs: 5_000 });
      const results = [];
      for (let index = 0; index < 4; index += 1) results.push(await bucket.check('k'));
      expect(results.map((result) => result.allowed)).toEqual([true, true, true, false]);
      await bucket.close();
      const back = window();
      const result = await back.check('k');
      expect(result).toMatchObject({ source: 'store', remaining: 94 });
      await back.close();
    });
  });
