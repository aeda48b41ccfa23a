import type { AddressInfo } from 'node:net';
import { awayFromWindowEdge, isReachable, redisTimeOf, serviceUrl, uniqueName } from '@noa/testkit';
import express from 'express';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expressRateLimit } from '../../src/express.js';
import {
  createRateLimiter,
  customKeyOf,
  maxCustomKeyValueLength,
  type RateLimiter,
  type RateLimitResult,
} from '../../src/index.js';
import { RedisStore, recommendedRedisOptions } from '../../src/redis.js';

const redisUp = await isReachable('redis');
const skip = redisUp ? undefined : `skipped: no Redis at ${serviceUrl('redis')}`;
if (skip) console.log(skip);

// A keyBy value is bounded in UTF-16 code units (what `length` counts), Redis keys in bytes: a
// value of astral characters is 4 bytes per 2 units, of Latin-1 ones 2 bytes per unit. Over real
// HTTP on Redis: one quota per value whole or digested, and `reset(customKeyOf(value))` resets it.
describe.skipIf(skip !== undefined)('keyBy values beyond ASCII on Redis', () => {
  let client: Redis;
  let limiter: RateLimiter;
  let base: string;
  let close: () => Promise<void>;
  const prefix = `${uniqueName('rlck')}:`;
  // A fixed window, aligned by Redis TIME: a test's calls must all fall in one window (and before
  // its keys expire at the window's end), so each starts at least edgeMarginMs before the boundary.
  const windowMs = 60_000;
  const edgeMarginMs = 2_000;

  beforeAll(async () => {
    client = new Redis(serviceUrl('redis'), { ...recommendedRedisOptions, lazyConnect: true });
    await client.connect();
    limiter = createRateLimiter({
      limits: [{ limit: 1, windowMs }],
      store: new RedisStore({ client, prefix }),
      deadlineMs: 5_000,
    });
    const app = express();
    // A tenant name sent percent-encoded (header values are bytes): any Unicode once decoded.
    const tenant = (facts: { headers: Record<string, string | string[] | undefined> }) =>
      decodeURIComponent(String(facts.headers['x-tenant']));
    app.get('/', expressRateLimit({ limiter, keyBy: tenant }), (req, res) => {
      res.json({ key: (req as { rateLimit?: RateLimitResult }).rateLimit?.key });
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () => new Promise((resolve) => server.close(() => resolve()));
  });
  afterAll(async () => {
    await close();
    await limiter.close();
    const keys = await client.keys(`${prefix}*`);
    if (keys.length > 0) await client.del(...keys);
    client.disconnect();
  });

  const send = async (value: string) => {
    const response = await fetch(base, { headers: { 'x-tenant': encodeURIComponent(value) } });
    const body = (await response.json()) as { key?: string };
    return { status: response.status, key: body.key };
  };

  const crab = '\u{1F980}';
  it.each([
    { name: '64 astral characters (128 units, 256 bytes): whole', value: crab.repeat(64), digested: false },
    { name: '65 astral characters (130 units): digested', value: crab.repeat(65), digested: true },
    { name: '128 Latin-1 characters (256 bytes): whole', value: 'é'.repeat(128), digested: false },
    { name: '129 Latin-1 characters: digested', value: 'é'.repeat(129), digested: true },
    { name: 'one unit past the bound, mixed: digested', value: `${'ü'.repeat(127)}${crab}`, digested: true },
  ])('$name: one quota per value, reset by customKeyOf(value)', async ({ value, digested }) => {
    expect(value.length > maxCustomKeyValueLength).toBe(digested);
    await awayFromWindowEdge(windowMs, edgeMarginMs, redisTimeOf(client));
    const first = await send(value);
    expect(first).toEqual({ status: 200, key: customKeyOf(value) });
    expect(first.key!.startsWith(digested ? 'custom#' : 'custom:')).toBe(true);
    expect((await send(value)).status).toBe(429);
    // Another value of the same length and bytes but for its last character: its own quota.
    expect((await send(`${value.slice(0, -2)}zz`)).status).toBe(200);
    // The key Redis holds is the one reset names, in bytes too.
    const keys = await client.keys(`${prefix}*`);
    expect(keys.some((key) => key.includes(first.key!))).toBe(true);
    for (const key of keys) expect(Buffer.byteLength(key)).toBeLessThan(4 * maxCustomKeyValueLength + 100);
    await limiter.reset(customKeyOf(value));
    expect((await send(value)).status).toBe(200);
  });

  it('values with lone surrogates (JSON.parse makes them) keep a quota each in Redis', async () => {
    // Kept whole, Redis wrote each as U+FFFD (UTF-8): one key, one quota for the three.
    await awayFromWindowEdge(windowMs, edgeMarginMs, redisTimeOf(client));
    const values = ['\ud800', '\udbff', '\ufffd'].map((unit) => `t-${unit}`);
    for (const value of values) expect((await limiter.check(customKeyOf(value))).allowed).toBe(true);
    for (const value of values) expect((await limiter.check(customKeyOf(value))).allowed).toBe(false);
  });
});
