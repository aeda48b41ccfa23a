import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { JobCancelledError, type JobRecord, Queue, Worker } from '../../src/index.js';
import { RabbitMqProvider } from '../../src/rabbitmq.js';
import { RedisJobStateStore, type RedisJobStateStoreOptions } from '../../src/redis.js';
import { sleep, waitFor } from '../helpers.js';

// RabbitMQ + Redis job state across processes: two providers (two connections, as two processes
// would have) share one store prefix; what one does, the other's workers obey.
const url = serviceUrl('rabbitmq');
const redisUrl = serviceUrl('redis');
const reachable = (await isReachable('rabbitmq')) && (await isReachable('redis'));
if (!reachable) console.log(`skipped: no RabbitMQ at ${url} or no Redis at ${redisUrl}`);

describe.skipIf(!reachable)('RabbitMQ with a Redis job state store, across processes', () => {
  const connections: Redis[] = [];
  const providers: RabbitMqProvider[] = [];
  const workers: Worker<unknown, unknown>[] = [];
  const queues: string[] = [];

  /** Two providers on one store prefix, and a queue name. */
  const pair = (options: Partial<RedisJobStateStoreOptions> = {}) => {
    const prefix = uniqueName('state');
    const make = () => {
      const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
      connections.push(connection);
      const provider = new RabbitMqProvider({
        url,
        state: new RedisJobStateStore({ connection, prefix, ...options }),
      });
      providers.push(provider);
      return provider;
    };
    const name = uniqueName('mq-state');
    queues.push(name);
    return { first: make(), second: make(), name, prefix };
  };
  const track = <Data, Result>(worker: Worker<Data, Result>) => {
    workers.push(worker as Worker<unknown, unknown>);
    return worker;
  };

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((worker) => worker.close(200)));
  });
  afterAll(async () => {
    for (const name of queues) await providers[0]?.deleteQueue(name);
    await Promise.all(providers.map((provider) => provider.close()));
    await Promise.all(connections.map((connection) => connection.quit()));
  });

  it('declares the state capabilities on the instance', () => {
    const { first } = pair();
    expect(first.capabilities).toEqual(RabbitMqProvider.stateCapabilities);
    expect(new RabbitMqProvider({ url }).capabilities).toEqual(RabbitMqProvider.capabilities);
    expect(RabbitMqProvider.capabilities.getJob).toBe(false);
  });

  it('cancel from one process aborts the handler running in another, and it is not retried', async () => {
    const { first, second, name } = pair();
    const producer = new Queue({ name, provider: first });
    const consumer = new Queue({ name, provider: second });
    const { id } = await producer.add('long', null, { attempts: 5 });
    let reason: unknown;
    let runs = 0;
    track(
      new Worker({
        queue: consumer,
        leaseMs: 2_000,
        handler: (job) => {
          runs += 1;
          return new Promise((_resolve, reject) => {
            job.signal.addEventListener('abort', () => {
              reason = job.signal.reason;
              reject(job.signal.reason);
            });
          });
        },
      }),
    );
    await waitFor(() => runs === 1);
    expect(await producer.cancel(id)).toBe('signalled');
    await waitFor(() => reason !== undefined);
    expect(reason).toBeInstanceOf(JobCancelledError);
    await waitFor(async () => (await producer.getJob(id))?.state === 'failed');
    await sleep(200);
    expect(runs).toBe(1);
  });

  it('pause in one process holds the workers of another until resume', async () => {
    const { first, second, name } = pair();
    const admin = new Queue({ name, provider: first });
    const consumer = new Queue({ name, provider: second });
    const seen: string[] = [];
    track(
      new Worker({
        queue: consumer,
        pollIntervalMs: 100,
        handler: (job) => {
          seen.push(job.id);
        },
      }),
    );
    await admin.add('before', null);
    await waitFor(() => seen.length === 1);
    await admin.pause();
    await admin.add('held', null);
    await sleep(400);
    expect(seen).toHaveLength(1);
    expect(await admin.counts()).toMatchObject({ waiting: 1, paused: true });
    await admin.resume();
    await waitFor(() => seen.length === 2, 5_000, 'the held job after resume');
  });

  it('a job leased by a process that hangs is recovered by another, and runs once there', async () => {
    const { first, second, name } = pair();
    const queue = new Queue({ name, provider: second });
    const { id } = await queue.add('orphan', null);
    const leased = await first.exchange(name, {
      settle: [],
      fetch: 1,
      leaseUntil: Date.now() + 150,
      now: Date.now(),
      promoteDelayed: true,
      groupWeights: {},
      defaultGroupWeight: 1,
    });
    expect(leased.jobs.map((job) => job.id)).toEqual([id]);
    const seen: string[] = [];
    track(
      new Worker({
        queue,
        leaseMs: 2_000,
        maintenanceIntervalMs: 100,
        handler: (job) => {
          seen.push(job.id);
        },
      }),
    );
    await waitFor(() => seen.length === 1, 5_000, 'the stalled job to be recovered');
    await waitFor(async () => (await queue.getJob(id))?.state === 'completed');
    // The hung process dies: the broker redelivers its stale message, which is dropped.
    await first.close();
    await sleep(300);
    expect(seen).toEqual([id]);
  });

  it("a stalled process's refused late outcome frees its prefetch slot while another process runs the job", async () => {
    const { first, second, name } = pair();
    const exchange = (settle: Parameters<RabbitMqProvider['exchange']>[1]['settle'], fetch: number) =>
      first.exchange(name, {
        settle,
        fetch,
        leaseUntil: Date.now() + 150,
        now: Date.now(),
        promoteDelayed: true,
        groupWeights: {},
        defaultGroupWeight: 1,
      });
    const queue = new Queue({ name, provider: second });
    const { id } = await queue.add('contended', null);
    // The first process fetches one job at a time: its consumer's prefetch window is 1.
    const leased = await exchange([], 1);
    expect(leased.jobs.map((job) => job.id)).toEqual([id]);
    let letSecondFinish = (): void => {};
    const secondMayFinish = new Promise<void>((resolve) => {
      letSecondFinish = resolve;
    });
    const seen: string[] = [];
    track(
      new Worker({
        queue,
        leaseMs: 2_000,
        maintenanceIntervalMs: 100,
        handler: async (job) => {
          seen.push(job.id);
          await secondMayFinish;
        },
      }),
    );
    await waitFor(() => seen.length === 1, 5_000, 'the stalled job to be recovered by the second process');
    // The first process wakes up and completes its stale try: refused, the second run untouched.
    const late = await exchange([{ kind: 'complete', record: leased.jobs[0]!, result: 'late' }], 0);
    expect(late.stale).toEqual([id]);
    letSecondFinish();
    await waitFor(async () => (await queue.getJob(id))?.state === 'completed');
    await Promise.all(workers.splice(0).map((worker) => worker.close(200)));
    await second.close();
    // The refused try's delivery must be acked, or it holds the first process's only prefetch
    // slot (until its channel closes) and no later job ever reaches it.
    const { id: nextId } = await new Queue({ name, provider: first }).add('next', null);
    const taken: string[] = [];
    await waitFor(
      async () => {
        taken.push(...(await exchange([], 1)).jobs.map((job) => job.id));
        return taken.length > 0;
      },
      5_000,
      'the next job to reach the first process',
    );
    expect(taken).toEqual([nextId]);
  });

  it("a settlement resent after its reply was lost (the store had stored it) is accepted once, not refused as stale; another run's late one still is", async () => {
    const { first, second, name, prefix } = pair();
    const exchange = (settle: Parameters<RabbitMqProvider['exchange']>[1]['settle'], fetch: number) =>
      first.exchange(name, {
        settle,
        fetch,
        leaseUntil: Date.now() + 60_000,
        now: Date.now(),
        promoteDelayed: true,
        groupWeights: {},
        defaultGroupWeight: 1,
      });
    const queue = new Queue({ name, provider: second });
    const done = await queue.add('done', null);
    const gone = await queue.add('gone', null, { removeOnComplete: true });
    const dead = await queue.add('dead', null, { attempts: 1 });
    const retried = await queue.add('retried', null, { attempts: 3 });
    const jobKey = (id: string) => `${prefix}:{${name}}:j:${id}`;
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
    connections.push(redis);
    const firstToken = Number(await redis.hget(jobKey(retried.id), 't'));
    const leased: JobRecord[] = [];
    await waitFor(
      async () => {
        leased.push(...(await exchange([], 4 - leased.length)).jobs);
        return leased.length === 4;
      },
      5_000,
      'the four jobs to be leased',
    );
    const record = (id: string) => leased.find((job) => job.id === id)!;
    const settle: Parameters<RabbitMqProvider['exchange']>[1]['settle'] = [
      { kind: 'complete', record: record(done.id), result: 'ok' },
      { kind: 'complete', record: record(gone.id), result: 'ok' },
      { kind: 'fail', record: { ...record(dead.id), attemptsMade: 1 }, retryAt: null },
      { kind: 'fail', record: { ...record(retried.id), attemptsMade: 1 }, retryAt: Date.now() + 60_000 },
    ];
    const landed = await exchange(settle, 0);
    expect(landed.stale).toBeUndefined();
    // The retry was published once, as a new message (a newer token).
    const retryToken = await redis.hget(jobKey(retried.id), 't');
    expect(Number(retryToken)).toBeGreaterThan(firstToken);
    // The worker never saw that reply (its connection to Redis was lost) and sends the same
    // settlements again: the same outcomes, not a stale worker's. Accepted, applied once.
    const resent = await exchange(settle, 0);
    expect(resent.stale).toBeUndefined();
    expect(await redis.hget(jobKey(retried.id), 't')).toBe(retryToken);
    expect(await queue.counts()).toMatchObject({ active: 0, completed: 1, failed: 1, delayed: 1 });
    expect((await queue.getJob(done.id))?.result).toBe('ok');
    expect(await queue.getJob(gone.id)).toBeUndefined();
    // A try under another lease (a stalled run) is still refused once the job is finished.
    const other = await exchange(
      [{ kind: 'complete', record: { ...record(done.id), lease: 'not-this-run' }, result: 'late' }],
      0,
    );
    expect(other.stale).toEqual([done.id]);
    expect((await queue.getJob(done.id))?.result).toBe('ok');
  });

  it('a worker whose store exchange landed but whose reply was lost reports each job once it resends', async () => {
    class LostReply extends RedisJobStateStore {
      lost = 0;
      override async exchange(
        queue: string,
        request: Parameters<RedisJobStateStore['exchange']>[1],
      ): ReturnType<RedisJobStateStore['exchange']> {
        const response = await super.exchange(queue, request);
        if (this.lost === 0 && request.settle.length >= 3) {
          this.lost = request.settle.length;
          throw new Error('Connection is closed.');
        }
        return response;
      }
    }
    const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    connections.push(connection);
    const state = new LostReply({ connection, prefix: uniqueName('state') });
    const provider = new RabbitMqProvider({ url, state });
    providers.push(provider);
    const name = uniqueName('mq-lost-reply');
    queues.push(name);
    const queue = new Queue<number>({ name, provider });
    await queue.addBulk(Array.from({ length: 20 }, (_, n) => ({ name: 'job', data: n })));
    const completed = new Set<string>();
    const worker = track(
      new Worker<number, number>({
        queue,
        concurrency: 5,
        leaseMs: 1_000,
        maintenanceIntervalMs: 100,
        handler: async (job) => job.data,
      }),
    );
    worker.on('completed', (id) => completed.add(id));
    await waitFor(
      async () => (await queue.counts()).completed === 20,
      20_000,
      'every job stored as completed',
    );
    await waitFor(() => completed.size === 20, 5_000, 'every completion reported').catch(() => {});
    expect(state.lost).toBeGreaterThanOrEqual(3);
    expect(completed.size).toBe(20);
  });

  describe('a job id removed and added again within the settled window', () => {
    type Settle = Parameters<RabbitMqProvider['exchange']>[1]['settle'];
    const exchange = (
      provider: RabbitMqProvider,
      name: string,
      settle: Settle,
      fetch: number,
      leaseMs: number,
    ) =>
      provider.exchange(name, {
        settle,
        fetch,
        leaseUntil: Date.now() + leaseMs,
        now: Date.now(),
        promoteDelayed: true,
        groupWeights: {},
        defaultGroupWeight: 1,
      });
    /** Exchanges until one job is leased (the broker pushes asynchronously). */
    const leaseOne = async (provider: RabbitMqProvider, name: string, leaseMs: number) => {
      const leased: JobRecord[] = [];
      await waitFor(
        async () => {
          leased.push(...(await exchange(provider, name, [], 1, leaseMs)).jobs);
          return leased.length > 0;
        },
        5_000,
        'a job to be leased',
      );
      expect(leased).toHaveLength(1);
      return leased[0]!;
    };

    it("the old run's late outcome is refused, not applied to the new run (whose own then lands)", async () => {
      const { first, second, name } = pair();
      const queue = new Queue<string>({ name, provider: second });
      await queue.add('job', 'old', { jobId: 'reused' });
      // The old run stalls past its lease and is dead-lettered; the dead job is purged.
      const oldRun = await leaseOne(first, name, 150);
      await sleep(300);
      expect((await queue.clean({}, 0)).deadLettered).toBe(1);
      expect(await queue.dlq.purge(['reused'])).toBe(1);
      // The id is added again and another process runs it.
      expect((await queue.add('job', 'new', { jobId: 'reused' })).added).toBe(true);
      const newRun = await leaseOne(second, name, 60_000);
      expect(newRun.data).toBe('new');
      expect(newRun.lease).not.toBe(oldRun.lease);
      // The old run wakes up and reports: it must not settle the new run.
      const late = await exchange(
        first,
        name,
        [{ kind: 'complete', record: oldRun, result: 'old run' }],
        0,
        0,
      );
      expect(late.stale).toEqual(['reused']);
      expect((await queue.getJob('reused'))?.state).toBe('active');
      const own = await exchange(
        second,
        name,
        [{ kind: 'complete', record: newRun, result: 'new run' }],
        0,
        0,
      );
      expect(own.stale).toBeUndefined();
      expect(await queue.getJob('reused')).toMatchObject({ state: 'completed', result: 'new run' });
    });

    it("a stalled new run's late outcome is refused, not taken for the old run's resent settlement", async () => {
      const { first, second, name } = pair();
      const queue = new Queue<string>({ name, provider: second });
      await queue.add('job', 'old', { jobId: 'again', removeOnComplete: true });
      const oldRun = await leaseOne(first, name, 60_000);
      const done = await exchange(first, name, [{ kind: 'complete', record: oldRun, result: 'old' }], 0, 0);
      expect(done.stale).toBeUndefined();
      expect(await queue.getJob('again')).toBeUndefined();
      // Added again at once (well inside the 60 s window of the old run's settlement).
      expect((await queue.add('job', 'new', { jobId: 'again' })).added).toBe(true);
      const stalled = await leaseOne(first, name, 150);
      expect(stalled.data).toBe('new');
      await sleep(300);
      expect((await queue.clean()).recovered).toBe(1);
      const rerun = await leaseOne(second, name, 60_000);
      // The stalled run's outcome arrives late: the job runs elsewhere, so it is refused.
      const late = await exchange(
        first,
        name,
        [{ kind: 'complete', record: stalled, result: 'stalled' }],
        0,
        0,
      );
      expect(late.stale).toEqual(['again']);
      expect((await queue.getJob('again'))?.state).toBe('active');
      const own = await exchange(second, name, [{ kind: 'complete', record: rerun, result: 'rerun' }], 0, 0);
      expect(own.stale).toBeUndefined();
      expect(await queue.getJob('again')).toMatchObject({ state: 'completed', result: 'rerun' });
    });

    it('a message of the removed job left in the broker does not run the new one with the old data', async () => {
      const { second, name } = pair();
      const queue = new Queue<string>({ name, provider: second });
      await queue.add('job', 'old', { jobId: 'replaced' });
      // Cancelled while waiting: dead-lettered, its message left in the broker to be dropped.
      expect(await queue.cancel('replaced')).toBe('removed');
      expect(await queue.dlq.purge(['replaced'])).toBe(1);
      expect((await queue.add('job', 'new', { jobId: 'replaced' })).added).toBe(true);
      const run = await leaseOne(second, name, 60_000);
      expect(run.data).toBe('new');
    });
  });

  it('publishes a job that was claimed but never published (the outbox), once', async () => {
    const { second, name, prefix } = pair({ outboxTimeoutMs: 200 });
    const queue = new Queue<number>({ name, provider: second });
    // A producer that claimed the id and died before publishing: only the store knows the job.
    const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    connections.push(connection);
    const crashed = new RedisJobStateStore({ connection, prefix, outboxTimeoutMs: 200 });
    const now = Date.now();
    const lost: JobRecord = {
      id: 'claimed-only',
      name: 'lost',
      data: 7,
      priority: 0,
      attempts: 3,
      backoff: { type: 'fixed', delayMs: 10 },
      removeOnComplete: false,
      attemptsMade: 0,
      errors: [],
      createdAt: now,
      availableAt: now,
    };
    const [token] = await crashed.add(name, [lost], now);
    expect(token).toBeGreaterThan(0);
    await crashed.close();
    expect((await queue.add('again', 8, { jobId: 'claimed-only' })).added).toBe(false);
    const seen: number[] = [];
    track(
      new Worker({
        queue,
        maintenanceIntervalMs: 100,
        handler: (job) => {
          seen.push(job.data);
        },
      }),
    );
    await waitFor(() => seen.length === 1, 5_000, 'the outbox to publish the claimed job');
    await sleep(500);
    expect(seen).toEqual([7]);
  });
});
