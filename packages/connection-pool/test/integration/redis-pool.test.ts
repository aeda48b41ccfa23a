import { isReachable, serviceUrl, startPrivateRedis, uniqueName } from '@noa/testkit';
import { ReplyError } from 'ioredis';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { BackendUnavailableError, PoolClosedError, QueryTimeoutError } from '../../src/index.js';
import { createRedisPool } from '../../src/redis.js';
import { sampleOf } from './helpers/metrics.js';
import { sleep, waitFor } from './helpers/wait.js';

/** The value of `noa_connection_pool_errors_total{pool, kind}`, or 0 when the series does not exist. */
function errorsOfKind(registry: Registry, pool: string, kind: string): Promise<number> {
  return sampleOf(registry, `noa_connection_pool_errors_total{pool="${pool}",kind="${kind}"}`);
}

const url = serviceUrl('redis');
const reachable = await isReachable('redis');
if (!reachable) console.log(`skipped: no Redis at ${url}`);

describe.skipIf(!reachable)('RedisPool', () => {
  it('gives blocking commands their own connections, so BLPOPs do not stall each other', async () => {
    const pool = createRedisPool({ redis: url, max: 3 });
    const key = uniqueName('cp_queue');
    try {
      const waiting = [
        pool.use((client) => client.blpop(`${key}:a`, 5)),
        pool.use((client) => client.blpop(`${key}:b`, 5)),
      ];
      for (let attempt = 0; attempt < 200 && pool.health().stats.active < 2; attempt += 1) {
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(pool.health().stats.active).toBe(2);
      await pool.use(async (client) => {
        await client.rpush(`${key}:b`, 'second');
        await client.rpush(`${key}:a`, 'first');
      });
      expect(await Promise.all(waiting)).toEqual([
        [`${key}:a`, 'first'],
        [`${key}:b`, 'second'],
      ]);
    } finally {
      await pool.close();
    }
  });

  it('leak detection as on the SQL pools: a connection held past the threshold is in pool.leaks() with its acquire stack, counted once, and close() reports it', async () => {
    const registry = new Registry();
    const name = uniqueName('cp_leak');
    const pool = createRedisPool({
      redis: url,
      name,
      registry,
      leakDetectionThresholdMs: 50,
      evictionIntervalMs: 20,
      closeTimeoutMs: 10,
    });
    const held = await pool.acquire(); // never released
    expect(await held.ping()).toBe('PONG');
    await waitFor(() => pool.pool.leaks().length === 1);
    expect(pool.pool.leaks()[0]!.acquireStack).toContain('redis-pool.test.ts');
    await sleep(100); // more leak checks: still counted once
    expect(await sampleOf(registry, `noa_connection_pool_leaks_total{pool="${name}"}`)).toBe(1);
    const report = await pool.close();
    expect(report.unreleased).toHaveLength(1);
    expect(report.unreleased[0]!.acquireStack).toContain('redis-pool.test.ts');
    expect(await sampleOf(registry, `noa_connection_pool_leaks_total{pool="${name}"}`)).toBe(1);
  });

  it('use(): an error of fn passes through as it is (a WRONGTYPE reply), and its connection is closed, not lent again', async () => {
    const registry = new Registry();
    const name = uniqueName('cp_fn_error');
    const pool = createRedisPool({ redis: url, name, registry, max: 1 });
    const key = uniqueName('cp_list');
    try {
      await pool.use((client) => client.rpush(key, 'a'));
      const error = await pool.use((client) => client.incr(key)).catch((caught: unknown) => caught);
      // ioredis 6: a SimpleError, its subclass of ReplyError (named ReplyError still).
      expect(error).toBeInstanceOf(ReplyError);
      expect((error as Error).name).toBe('ReplyError');
      expect((error as Error).message).toMatch(/^WRONGTYPE/);
      expect(
        await sampleOf(registry, `noa_connection_pool_connections_destroyed_total{pool="${name}"}`),
      ).toBe(1);
      expect(await pool.use((client) => client.lpop(key))).toBe('a');
      expect(await sampleOf(registry, `noa_connection_pool_connections_created_total{pool="${name}"}`)).toBe(
        2,
      );
    } finally {
      await pool.close();
    }
  });

  it('isolates WATCH/MULTI per connection', async () => {
    const pool = createRedisPool({ redis: url, max: 2 });
    const key = uniqueName('cp_counter');
    try {
      const result = await pool.use(async (client) => {
        await client.watch(key);
        // A write from another connection between WATCH and EXEC aborts the transaction.
        await pool.use((other) => other.set(key, 'changed'));
        return client.multi().set(key, 'mine').exec();
      });
      expect(result).toBeNull();
      expect(await pool.use((client) => client.get(key))).toBe('changed');
      await pool.use((client) => client.del(key));
    } finally {
      await pool.close();
    }
  });

  it('close() with a blocking command in flight: its caller gets PoolClosedError, a client released late is ignored', async () => {
    const pool = createRedisPool({ redis: url, max: 2, closeTimeoutMs: 100 });
    const key = uniqueName('cp_close');
    const blocked = pool.use((client) => client.blpop(key, 10)).catch((error: unknown) => error);
    const raw = await pool.acquire();
    for (let attempt = 0; attempt < 200 && pool.health().stats.active < 2; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const report = await pool.close();
    expect(report.unreleased).toHaveLength(2);
    expect(await blocked).toBeInstanceOf(PoolClosedError);
    expect(() => pool.release(raw)).not.toThrow();
  });

  it('fails fast while a private Redis is down and recovers after it restarts', async () => {
    const server = await startPrivateRedis();
    const pool = createRedisPool({ redis: server.url, max: 2, initialBackoffMs: 50, maxBackoffMs: 200 });
    try {
      expect(await pool.use((client) => client.ping())).toBe('PONG');
      await server.kill();
      const started = Date.now();
      await expect(pool.use((client) => client.ping())).rejects.toBeInstanceOf(BackendUnavailableError);
      await expect(pool.use((client) => client.ping())).rejects.toBeInstanceOf(BackendUnavailableError);
      expect(Date.now() - started).toBeLessThan(5_000 + 1_000);
      await server.restart();
      let answer: string | undefined;
      for (let attempt = 0; attempt < 100 && answer === undefined; attempt += 1) {
        answer = await pool
          .use((client) => client.ping())
          .catch(async () => {
            await new Promise((resolve) => setTimeout(resolve, 50));
            return undefined;
          });
      }
      expect(answer).toBe('PONG');
      expect(pool.health().healthy).toBe(true);
    } finally {
      await pool.close();
      await server.stop();
    }
  });

  it('a command sent to a frozen server ends with QueryTimeoutError (counted), a new connection with BackendUnavailableError, and the pool recovers', async () => {
    const server = await startPrivateRedis();
    const registry = new Registry();
    const pool = createRedisPool({
      redis: server.url,
      name: 'frozen',
      max: 2,
      queryTimeoutMs: 300,
      connectTimeoutMs: 500,
      initialBackoffMs: 50,
      maxBackoffMs: 200,
      registry,
    });
    try {
      expect(await pool.use((client) => client.ping())).toBe('PONG');
      server.freeze();
      try {
        let started = Date.now();
        await expect(pool.use((client) => client.get('k'))).rejects.toBeInstanceOf(QueryTimeoutError);
        // Generous bound for 2 loaded cores: without the deadline the command waits for ever.
        expect(Date.now() - started).toBeLessThan(300 + 2_000);
        expect(await errorsOfKind(registry, 'frozen', 'query_timeout')).toBe(1);
        // The timed-out connection was closed; a new one gets no handshake answer either.
        started = Date.now();
        await expect(pool.use((client) => client.get('k'))).rejects.toBeInstanceOf(BackendUnavailableError);
        expect(Date.now() - started).toBeLessThan(500 + 2_000);
      } finally {
        server.resume();
      }
      let answer: string | undefined;
      for (let attempt = 0; attempt < 100 && answer === undefined; attempt += 1) {
        answer = await pool
          .use((client) => client.ping())
          .catch(async () => {
            await new Promise((resolve) => setTimeout(resolve, 50));
            return undefined;
          });
      }
      expect(answer).toBe('PONG');
    } finally {
      server.resume();
      await pool.close();
      await server.stop();
    }
  });

  it('the deadline of a command on a raw acquired connection is typed too, and inside a pipeline', async () => {
    const server = await startPrivateRedis();
    const pool = createRedisPool({ redis: server.url, max: 2, queryTimeoutMs: 300, connectTimeoutMs: 500 });
    try {
      const client = await pool.acquire();
      expect(await client.ping()).toBe('PONG');
      server.freeze();
      try {
        await expect(client.get('k')).rejects.toBeInstanceOf(QueryTimeoutError);
        pool.release(client);
        const other = await pool.acquire().catch((error: unknown) => error);
        expect(other).toBeInstanceOf(BackendUnavailableError);
      } finally {
        server.resume();
      }
      // Connects are backing off after the failed one: retry until the pool reconnects.
      let fresh: Awaited<ReturnType<typeof pool.acquire>> | undefined;
      await waitFor(async () => {
        fresh = await pool.acquire().catch(() => undefined);
        return fresh !== undefined;
      });
      if (fresh === undefined) throw new Error('no connection after resume');
      try {
        server.freeze();
        // A pipeline answers per command: each one in flight on the frozen connection timed out.
        const results = await fresh.pipeline().set('a', '1').get('a').exec();
        expect(results?.map(([error]) => error)).toEqual([
          expect.any(QueryTimeoutError),
          expect.any(QueryTimeoutError),
        ]);
      } finally {
        server.resume();
        pool.release(fresh);
      }
    } finally {
      server.resume();
      await pool.close();
      await server.stop();
    }
  });

  it('a blocking command keeps its own timeout: BLPOP past queryTimeoutMs answers null on a live server, and times out on a frozen one only after its timeout', async () => {
    const server = await startPrivateRedis();
    const pool = createRedisPool({ redis: server.url, max: 2, queryTimeoutMs: 200, connectTimeoutMs: 500 });
    const key = uniqueName('cp_block');
    try {
      // Half a second: past queryTimeoutMs (200 ms) by far (BLPOP takes a decimal timeout).
      expect(await pool.use((client) => client.blpop(key, 0.5))).toBeNull();
      const sent = Date.now();
      const blocked = pool.use((client) => client.blpop(key, 0.5)).catch((error: unknown) => error);
      await new Promise((resolve) => setTimeout(resolve, 100));
      server.freeze();
      try {
        expect(await blocked).toBeInstanceOf(QueryTimeoutError);
        // Its own half second plus queryTimeoutMs from when it was sent, never queryTimeoutMs alone.
        expect(Date.now() - sent).toBeGreaterThanOrEqual(500);
      } finally {
        server.resume();
      }
    } finally {
      server.resume();
      await pool.close();
      await server.stop();
    }
  });

  it("ioredis' own commandTimeout, unlike queryTimeoutMs, cuts blocking commands too: a BLPOP longer than it rejects with QueryTimeoutError on a live server", async () => {
    const key = uniqueName('cp_ct_block');
    const pool = createRedisPool({ redis: { ...redisOptionsOf(url), commandTimeout: 200 }, max: 2 });
    const guarded = createRedisPool({ redis: url, max: 2, queryTimeoutMs: 200 });
    try {
      await expect(pool.use((client) => client.blpop(key, 1))).rejects.toBeInstanceOf(QueryTimeoutError);
      // The same wait under queryTimeoutMs gets its own second: the live server answers nil.
      expect(await guarded.use((client) => client.blpop(key, 1))).toBeNull();
      // The cut connection was closed, not lent again with the BLPOP still waiting on the server.
      expect(await pool.use((client) => client.ping())).toBe('PONG');
    } finally {
      await pool.close();
      await guarded.close();
    }
  });

  it("ioredis' own commandTimeout comes back as QueryTimeoutError instead of an untyped error", async () => {
    const server = await startPrivateRedis();
    const registry = new Registry();
    const pool = createRedisPool({
      redis: { ...redisOptionsOf(server.url), commandTimeout: 200 },
      name: 'ct',
      registry,
    });
    try {
      expect(await pool.use((client) => client.ping())).toBe('PONG');
      server.freeze();
      try {
        await expect(pool.use((client) => client.get('k'))).rejects.toBeInstanceOf(QueryTimeoutError);
        expect(await errorsOfKind(registry, 'ct', 'query_timeout')).toBe(1);
      } finally {
        server.resume();
      }
    } finally {
      server.resume();
      await pool.close();
      await server.stop();
    }
  });

  it('health() notices a frozen server (periodic probe with a deadline) and a killed one, and heals when it answers again', async () => {
    const server = await startPrivateRedis();
    const pool = createRedisPool({
      redis: server.url,
      max: 2,
      healthCheckIntervalMs: 100,
      queryTimeoutMs: 300,
      connectTimeoutMs: 500,
      initialBackoffMs: 50,
      maxBackoffMs: 200,
    });
    try {
      // The probe's first connection is open (frozen during its handshake it would count as down).
      await waitFor(() => pool.health().stats.idle > 0);
      expect(pool.health().healthy).toBe(true);
      server.freeze();
      try {
        await waitFor(() => !pool.health().healthy, 10_000);
        expect(pool.health().reason).toBe('unresponsive');
      } finally {
        server.resume();
      }
      await waitFor(() => pool.health().healthy, 10_000);
      await server.kill();
      await waitFor(() => !pool.health().healthy, 10_000);
      expect(pool.health().reason).toBe('down');
      await server.restart();
      await waitFor(() => pool.health().healthy, 10_000);
    } finally {
      server.resume();
      await pool.close();
      await server.stop();
    }
  });

  it('health() stays unresponsive until a command is answered: a pipeline that timed out, or a use() that sent nothing, does not make it healthy', async () => {
    const server = await startPrivateRedis();
    const pool = createRedisPool({
      redis: server.url,
      min: 2,
      max: 2,
      queryTimeoutMs: 200,
      connectTimeoutMs: 500,
    });
    try {
      // Two open connections: one for the pipeline that times out, one for the use() after it.
      await waitFor(() => pool.health().stats.idle === 2);
      server.freeze();
      try {
        // exec() resolves with per-command errors, so use() itself succeeds.
        const results = await pool.use((client) => client.pipeline().get('k').exec());
        expect(results?.map(([error]) => error)).toEqual([expect.any(QueryTimeoutError)]);
        expect(pool.health()).toMatchObject({ healthy: false, reason: 'unresponsive' });
        await pool.use(async () => 'no command sent');
        expect(pool.health()).toMatchObject({ healthy: false, reason: 'unresponsive' });
      } finally {
        server.resume();
      }
      // An answer on a raw connection is an answer too.
      const client = await pool.acquire();
      expect(await client.ping()).toBe('PONG');
      pool.release(client);
      expect(pool.health().healthy).toBe(true);
    } finally {
      server.resume();
      await pool.close();
      await server.stop();
    }
  });

  it('the health probe does not queue behind busy connections: no acquire timeouts, no waiter ahead of callers', async () => {
    const registry = new Registry();
    const name = uniqueName('cp_probe_busy');
    const pool = createRedisPool({
      redis: url,
      name,
      max: 1,
      healthCheckIntervalMs: 50,
      // The BLPOP below may take its 1 s plus this: 100 ms was passed once on a loaded machine.
      queryTimeoutMs: 1_000,
      registry,
    });
    const key = uniqueName('cp_probe_busy');
    try {
      await waitFor(() => pool.health().stats.idle > 0);
      // A first probe may time out while the connection is still being made (a connect past the
      // deadline on a loaded machine): only what the busy second adds is counted.
      const timeouts = `noa_connection_pool_acquire_timeouts_total{pool="${name}"}`;
      const timeoutsBefore = await sampleOf(registry, timeouts);
      // The only connection is busy for a second: the probe has nothing free to ping.
      let sawWaiter = false;
      const busy = pool.use((client) => client.blpop(key, 1));
      const watch = setInterval(() => {
        if (pool.health().stats.waiting > 0) sawWaiter = true;
      }, 10);
      expect(await busy).toBeNull();
      clearInterval(watch);
      expect(sawWaiter).toBe(false);
      expect(await sampleOf(registry, timeouts)).toBe(timeoutsBefore);
      expect(pool.health().healthy).toBe(true);
    } finally {
      await pool.close();
    }
  });

  it('a MULTI/EXEC that timed out on a frozen server is never resent: after SIGCONT it is applied all or nothing, never twice (QueryTimeoutError means the outcome is unknown, not that nothing was applied)', async () => {
    const server = await startPrivateRedis();
    const pool = createRedisPool({ redis: server.url, max: 2, queryTimeoutMs: 200, connectTimeoutMs: 500 });
    const key = uniqueName('cp_multi');
    try {
      await pool.use((client) => client.set(key, '0'));
      server.freeze();
      try {
        const failed = await pool
          .use((client) => client.multi().incr(key).incr(key).exec())
          .catch((error: unknown) => error);
        expect(failed).toBeInstanceOf(QueryTimeoutError);
        // Nothing went out again on another connection while the server was frozen either.
        const piped = await pool
          .use((client) => client.pipeline().incr(key).exec())
          .catch((error: unknown) => error);
        expect(piped).toBeInstanceOf(BackendUnavailableError);
      } finally {
        server.resume();
      }
      // The bytes were already in the server's socket buffer, so it normally runs the
      // transaction on waking; whatever it does, it is all or nothing and never twice.
      // (Connects fail fast until the pool's backoff after the failed one above has passed.)
      const read = () => pool.use((client) => client.get(key)).catch(() => undefined);
      await waitFor(async () => (await read()) !== undefined);
      for (let poll = 0; poll < 10; poll += 1) {
        expect(['0', '2']).toContain(await read());
        await sleep(50);
      }
    } finally {
      server.resume();
      await pool.close();
      await server.stop();
    }
  });

  it('close() does not wait out a health probe stuck on a frozen server: the probe is abandoned, its connection not reported unreleased', async () => {
    const server = await startPrivateRedis();
    // The probe's deadline is connectTimeoutMs (no queryTimeoutMs): 10 s.
    const pool = createRedisPool({
      redis: server.url,
      max: 2,
      healthCheckIntervalMs: 50,
      connectTimeoutMs: 10_000,
    });
    try {
      await waitFor(() => pool.health().stats.idle > 0);
      server.freeze();
      // A probe round starts and its PING goes unanswered.
      await waitFor(() => pool.health().stats.active > 0);
      const closing = pool.close();
      const outcome = await Promise.race([closing, sleep(5_000).then(() => 'still closing' as const)]);
      expect(outcome).toEqual({ unreleased: [] });
    } finally {
      server.resume();
      await pool.close();
      await server.stop();
    }
  });

  it('pub/sub under queryTimeoutMs: a subscriber waiting longer than the deadline for a message is not timed out (only commands have deadlines)', async () => {
    const pool = createRedisPool({ redis: url, max: 2, queryTimeoutMs: 200 });
    const channel = uniqueName('cp_channel');
    try {
      const received = pool.use(async (client) => {
        await client.subscribe(channel);
        const message = await new Promise<string>((resolve) =>
          client.once('message', (_, text) => resolve(text)),
        );
        await client.unsubscribe(channel);
        return message;
      });
      await waitFor(() => pool.health().stats.active === 1);
      // Three deadlines of silence on the subscriber before the message comes.
      await sleep(600);
      await pool.use(async (client) => {
        await waitFor(async () => (await client.publish(channel, 'late')) === 1);
      });
      expect(await received).toBe('late');
      expect(pool.health().healthy).toBe(true);
    } finally {
      await pool.close();
    }
  });
});

/** ioredis options for a `redis://host:port` URL. */
function redisOptionsOf(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port) };
}
