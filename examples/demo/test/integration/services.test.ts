import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  awayFromWindowEdge,
  clearRedisPrefix,
  postgresExec,
  type RabbitVhost,
  serviceUrl,
  skipReason,
  uniqueName,
  withRabbitVhost,
} from '@noa/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, type DemoApp } from '../../src/app.js';

const unreachable = (
  await Promise.all([
    skipReason('redis', 'Redis'),
    skipReason('postgres', 'PostgreSQL'),
    skipReason('rabbitmq', 'RabbitMQ'),
  ])
).find((reason) => reason !== undefined);

interface Instance {
  demo: DemoApp;
  server?: Server;
  base: string;
}

/**
 * Resolves when a bus message from the other instance has been applied to `demo`'s cache
 * (milliseconds on loopback; the generous bound only turns a lost message into a clear failure).
 */
function nextInvalidation(demo: DemoApp): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error('no invalidation reached the other instance within 10 s'));
    }, 10_000);
    const stop = demo.cache.on('invalidation', () => {
      stop();
      clearTimeout(timer);
      resolve();
    });
  });
}

describe.skipIf(unreachable)('two demo instances sharing Redis, Postgres and RabbitMQ', () => {
  // One name for the Redis prefix, the Postgres schema and the queue; the RabbitMQ vhost is the
  // test's own as well, so nothing here meets another test's data.
  const namespace = uniqueName('demo');
  const databaseUrl = serviceUrl('postgres');
  let vhost: RabbitVhost | undefined;
  const instances: Instance[] = [];
  const a = () => instances[0]!;
  const b = () => instances[1]!;

  beforeAll(async () => {
    vhost = await withRabbitVhost();
    const services = { redisUrl: serviceUrl('redis'), databaseUrl, amqpUrl: vhost.url, namespace };
    for (let index = 0; index < 2; index += 1)
      instances.push({ demo: createApp({ services, rateLimitDeadlineMs: 2_000 }), base: '' });
    // Both start at once, as after a deploy: the table is created and seeded once.
    await Promise.all(instances.map(({ demo }) => demo.ready()));
    for (const instance of instances) {
      instance.server = instance.demo.app.listen(0, '127.0.0.1');
      await once(instance.server, 'listening');
      instance.base = `http://127.0.0.1:${(instance.server.address() as AddressInfo).port}`;
    }
  });

  afterAll(async () => {
    for (const { demo, server } of instances) {
      if (server) {
        const closed = once(server, 'close');
        server.close();
        server.closeAllConnections();
        await closed;
      }
      await demo.close();
    }
    await postgresExec(databaseUrl, `DROP SCHEMA IF EXISTS "${namespace}" CASCADE`);
    await clearRedisPrefix(`${namespace}:`);
    await vhost?.drop();
  });

  it('runs in services mode', () => {
    expect(instances.map(({ demo }) => demo.mode)).toEqual(['services', 'services']);
  });

  it('shares the rate limit: 5 requests per window over both instances together, not 5 each', async () => {
    // `/api/hello`'s fixed window is aligned to multiples of 10 s (by Redis TIME, this host's clock):
    // a burst that starts in a window's last seconds would straddle two and see the limit twice.
    await awayFromWindowEdge(10_000, 3_000);
    const statuses: number[] = [];
    const remaining: number[] = [];
    for (let request = 0; request < 8; request += 1) {
      const response = await fetch(`${instances[request % 2]!.base}/api/hello`);
      statuses.push(response.status);
      if (response.ok) remaining.push(((await response.json()) as { remaining: number }).remaining);
      else await response.body?.cancel();
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    // Each instance counts down from what the other left.
    expect(remaining).toEqual([4, 3, 2, 1, 0]);
  });

  it('a product cached on A and invalidated through B is a MISS on A’s next read', async () => {
    const read = async (instance: Instance) => {
      const response = await fetch(`${instance.base}/api/products/7`);
      await response.body?.cancel();
      return response.headers.get('x-cache');
    };
    expect(await read(a())).toBe('MISS');
    expect(await read(a())).toBe('HIT'); // A's L1
    expect(await read(b())).toBe('HIT'); // B finds it in Redis (L2): it never loaded it
    expect(b().demo.cache.stats()).toMatchObject({ hits: { l2: 1 }, factoryRuns: 0 });

    const reachedA = nextInvalidation(a().demo);
    const invalidated = await fetch(`${b().base}/api/products/7/invalidate`, { method: 'POST' });
    expect(invalidated.status).toBe(200);
    await invalidated.body?.cancel();
    await reachedA;
    expect(await read(a())).toBe('MISS');
  });

  it('loads products from the Postgres table: a changed row shows once invalidated', async () => {
    const read = async (instance: Instance) => {
      const response = await fetch(`${instance.base}/api/products/8`);
      return { cache: response.headers.get('x-cache'), product: await response.json() };
    };
    expect(await read(a())).toMatchObject({
      cache: 'MISS',
      product: { id: '8', name: 'Product 8', price: 17.5 },
    });
    await postgresExec(
      databaseUrl,
      `UPDATE "${namespace}".products SET name = 'Renamed', price = 1.25 WHERE id = '8'`,
    );
    // Cached: the change is not seen until the product is invalidated.
    expect(await read(b())).toMatchObject({ cache: 'HIT', product: { name: 'Product 8' } });

    const reachedB = nextInvalidation(b().demo);
    await (await fetch(`${a().base}/api/products/8/invalidate`, { method: 'POST' })).body?.cancel();
    await reachedB;
    expect(await read(b())).toMatchObject({
      cache: 'MISS',
      product: { id: '8', name: 'Renamed', price: 1.25 },
    });

    const unknown = await fetch(`${a().base}/api/products/no-such-id`);
    expect(unknown.status).toBe(404);
    await unknown.body?.cancel();
  });

  it('a job posted to A completes, and B sees its state (and its idempotency key)', async () => {
    const post = (instance: Instance) =>
      fetch(`${instance.base}/api/jobs/email`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': 'welcome-ada' },
        body: JSON.stringify({ to: 'ada@example.com', subject: 'hi' }),
      });
    const added = await post(a());
    expect(added.status).toBe(202);
    const { id } = (await added.json()) as { id: string };
    const again = await post(b());
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ id, added: false });

    let job: { state: string; result?: { sentTo: string } } = { state: 'waiting' };
    for (let attempt = 0; attempt < 200 && job.state !== 'completed'; attempt += 1) {
      if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 50));
      job = (await (await fetch(`${b().base}/api/jobs/email/${id}`)).json()) as typeof job;
    }
    expect(job).toMatchObject({ state: 'completed', result: { sentTo: 'ada@example.com' } });
    expect(await (await fetch(`${b().base}/api/jobs/email`)).json()).toMatchObject({
      completed: 1,
      failed: 0,
    });
  });

  it('shows every package’s metrics on /metrics, the Postgres pool’s included', async () => {
    const text = await (await fetch(`${a().base}/metrics`)).text();
    for (const prefix of ['noa_rate_limiter_', 'noa_cache_manager_', 'noa_message_queue_'])
      expect(text).toContain(prefix);
    expect(text).toMatch(new RegExp(`noa_connection_pool_\\w+\\{[^}]*pool="${namespace}:primary"`));
  });
});
