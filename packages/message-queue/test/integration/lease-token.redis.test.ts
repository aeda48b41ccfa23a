import { uniqueName } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { Queue, Worker } from '../../src/index.js';
import { RedisProvider } from '../../src/redis.js';
import { waitFor } from '../helpers.js';
import { redisContext } from './redis-context.js';

const redis = await redisContext();

describe.skipIf(!redis.reachable)('Redis lease tokens', () => {
  afterAll(() => redis.closeAll());

  it('a job leased before lease tokens existed (active without one) is still renewed and settled', async () => {
    const connection = redis.connect();
    const provider = new RedisProvider({ connection });
    const queue = new Queue({ name: uniqueName('legacy-lease'), provider });
    const { id } = await queue.add('old', null);
    const lease = (now: number) => ({
      fetch: 1,
      leaseUntil: now + 60_000,
      now,
      promoteDelayed: false,
      groupWeights: {},
      defaultGroupWeight: 1,
    });
    const [record] = (await provider.exchange(queue.name, { settle: [], ...lease(Date.now()) })).jobs;
    expect(record?.lease).toBeDefined();
    // As a worker of the previous version left it: in the active set, no token in `leases`.
    expect(await connection.hdel(`noa:mq:{${queue.name}}:leases`, id)).toBe(1);
    const now = Date.now();
    expect(await provider.extendLeases(queue.name, [record!], now + 60_000, now)).toEqual({
      cancelled: [],
      lost: [],
    });
    const settled = await provider.exchange(queue.name, {
      settle: [{ kind: 'complete', record: record!, result: 'ok' }],
      ...lease(now),
      fetch: 0,
    });
    expect(settled.stale).toBeUndefined();
    const info = await queue.getJob(id);
    expect(info?.state).toBe('completed');
    expect(info?.result).toBe('ok');
    await provider.close();
  });

  it("a lease whose job the previous version's maintain requeued (its token left behind) settles the job once, off the queue", async () => {
    const connection = redis.connect();
    const provider = new RedisProvider({ connection });
    const queue = new Queue({ name: uniqueName('rolling-lease'), provider });
    const { id } = await queue.add('rolling', null);
    const lease = (now: number) => ({
      fetch: 1,
      leaseUntil: now + 60_000,
      now,
      promoteDelayed: false,
      groupWeights: {},
      defaultGroupWeight: 1,
    });
    const [record] = (await provider.exchange(queue.name, { settle: [], ...lease(Date.now()) })).jobs;
    expect(record?.lease).toBeDefined();
    // During a rolling deploy, a process of the previous version recovers the stalled lease: it
    // moves the job from active back to waiting and knows nothing of the `leases` hash.
    const prefix = `noa:mq:{${queue.name}}:`;
    const score = await connection.zscore(`${prefix}active`, id);
    expect(await connection.zrem(`${prefix}active`, id)).toBe(1);
    await connection.zadd(`${prefix}wait`, '0', id);
    expect(await connection.hget(`${prefix}leases`, id)).toBe(record!.lease);
    expect(score).not.toBeNull();
    // The stalled worker (this version) completes its try late: one outcome, taken off the queue.
    const now = Date.now();
    await provider.exchange(queue.name, {
      settle: [{ kind: 'complete', record: record!, result: 'late' }],
      ...lease(now),
      fetch: 0,
    });
    expect(await queue.counts()).toMatchObject({ waiting: 0, active: 0, completed: 1 });
    expect((await queue.getJob(id))?.state).toBe('completed');
    expect(await connection.hlen(`${prefix}leases`)).toBe(0);
    await provider.close();
  });

  it("a settlement resent after its reply was lost (Redis had stored it) is accepted once, not refused as stale; another run's late one still is", async () => {
    const connection = redis.connect();
    const provider = new RedisProvider({ connection });
    const queue = new Queue({ name: uniqueName('resent-settle'), provider });
    const done = await queue.add('done', null);
    const dead = await queue.add('dead', null, { attempts: 1 });
    const lease = (now: number, fetch: number) => ({
      fetch,
      leaseUntil: now + 60_000,
      now,
      promoteDelayed: false,
      groupWeights: {},
      defaultGroupWeight: 1,
    });
    const { jobs } = await provider.exchange(queue.name, { settle: [], ...lease(Date.now(), 2) });
    const doneRecord = jobs.find((job) => job.id === done.id)!;
    const deadRecord = jobs.find((job) => job.id === dead.id)!;
    const settle = [
      { kind: 'complete' as const, record: doneRecord, result: 'ok' },
      { kind: 'fail' as const, record: { ...deadRecord, attempt: 1 }, retryAt: null },
    ];
    const first = await provider.exchange(queue.name, { settle, ...lease(Date.now(), 0) });
    expect(first.stale).toBeUndefined();
    // The worker never saw that reply (connection lost) and sends the same settlements again.
    const resent = await provider.exchange(queue.name, { settle, ...lease(Date.now(), 0) });
    expect(resent.stale).toBeUndefined();
    expect(await queue.counts()).toMatchObject({ waiting: 0, active: 0, completed: 1, failed: 1 });
    expect((await queue.getJob(done.id))?.result).toBe('ok');
    // A try under another lease token (a stalled run) is still refused once the job is finished.
    const other = await provider.exchange(queue.name, {
      settle: [{ kind: 'complete', record: { ...doneRecord, lease: 'not-this-run' }, result: 'late' }],
      ...lease(Date.now(), 0),
    });
    expect(other.stale).toEqual([done.id]);
    expect((await queue.getJob(done.id))?.result).toBe('ok');
    await provider.close();
  });

  // What restart.redis.test.ts caught now and then under load (2 of 4 runs): Redis killed after
  // it ran an exchange and before its reply left, the worker resent the settlements, and the
  // jobs, stored as completed, were never reported. Here the lost reply is made on purpose.
  it('a worker whose exchange landed but whose reply was lost reports each job once it resends', async () => {
    class LostReply extends RedisProvider {
      lost = 0;
      override async exchange(
        queue: string,
        request: Parameters<RedisProvider['exchange']>[1],
      ): ReturnType<RedisProvider['exchange']> {
        const response = await super.exchange(queue, request);
        if (this.lost === 0 && request.settle.length >= 3) {
          this.lost = request.settle.length;
          throw new Error('Connection is closed.');
        }
        return response;
      }
    }
    const provider = new LostReply({ connection: redis.connect() });
    const queue = new Queue<number>({ name: uniqueName('lost-reply'), provider });
    await queue.addBulk(Array.from({ length: 20 }, (_, n) => ({ name: 'job', data: n })));
    const completed = new Set<string>();
    const worker = new Worker<number, number>({
      queue,
      concurrency: 5,
      leaseMs: 500,
      maintenanceIntervalMs: 100,
      handler: async (job) => job.data,
    });
    worker.on('completed', (id) => completed.add(id));
    await waitFor(
      async () => (await queue.counts()).completed === 20,
      20_000,
      'every job stored as completed',
    );
    await waitFor(() => completed.size === 20, 5_000, 'every completion reported').catch(() => {});
    await worker.close();
    expect(provider.lost).toBeGreaterThanOrEqual(3);
    expect(completed.size).toBe(20);
    await provider.close();
  });

  it('keeps a token only for active jobs through completion, removal, failure, cancel, redrive and retention', async () => {
    const connection = redis.connect();
    const provider = new RedisProvider({ connection });
    const queue = new Queue({ name: uniqueName('lease-leak'), provider });
    const prefix = `noa:mq:{${queue.name}}:`;
    await queue.addBulk(
      Array.from({ length: 300 }, (_, n) => ({
        name: 'mixed',
        data: n,
        options: { attempts: 1, removeOnComplete: n % 3 === 0 },
      })),
    );
    const cancelMe = await queue.add('cancelled-while-active', -1);
    let settled = 0;
    const worker = new Worker<number, number>({
      queue: queue as Queue<number>,
      concurrency: 20,
      handler: async (job) => {
        if (job.data === -1) {
          await queue.cancel(job.id);
          await new Promise((resolve) => job.signal.addEventListener('abort', resolve));
          throw job.signal.reason;
        }
        if (job.data % 5 === 0) throw new Error('to the DLQ');
        return job.data;
      },
    });
    worker.on('completed', () => {
      settled += 1;
    });
    worker.on('failed', () => {
      settled += 1;
    });
    await waitFor(() => settled === 301, 20_000, 'every job to settle');
    expect(await queue.dlq.retryAll()).toBeGreaterThan(0);
    await waitFor(async () => (await queue.counts()).waiting === 0, 20_000, 'the redriven jobs');
    await waitFor(async () => (await queue.counts()).active === 0, 20_000, 'no job active');
    await worker.close();
    expect(await connection.hlen(`${prefix}leases`)).toBe(0);
    await queue.clean({ completedCount: 0, completedAgeMs: 0, deadCount: 0, deadAgeMs: 0 });
    expect(await connection.hlen(`${prefix}leases`)).toBe(0);
    expect(await connection.exists(`${prefix}j:${cancelMe.id}`)).toBe(0);
    await provider.close();
  });
});
