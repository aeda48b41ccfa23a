import { uniqueName } from '@noa/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { type JobRecord, retentionSchema } from '../../src/index.js';
import { RedisJobStateStore } from '../../src/redis.js';
import { redisContext } from './redis-context.js';

// The consistency rules of the RabbitMQ job state store, on real Redis, without a broker: which
// deliveries run, which are dropped, and what the outbox and lease recovery ask to publish.
const redis = await redisContext();
const retention = retentionSchema.parse({});

function record(id: string, now: number, overrides: Partial<JobRecord> = {}): JobRecord {
  return {
    id,
    name: 'job',
    data: { id },
    priority: 0,
    attempts: 3,
    backoff: { type: 'fixed', delayMs: 10 },
    removeOnComplete: false,
    attemptsMade: 0,
    errors: [],
    createdAt: now,
    availableAt: now,
    ...overrides,
  };
}

describe.skipIf(!redis.reachable)('RedisJobStateStore (real Redis)', () => {
  const stores: RedisJobStateStore[] = [];
  const make = (outboxTimeoutMs = 30_000) => {
    const store = new RedisJobStateStore({
      connection: redis.connect(),
      prefix: uniqueName('state'),
      outboxTimeoutMs,
    });
    stores.push(store);
    return { store, queue: uniqueName('q') };
  };
  afterAll(async () => {
    await Promise.all(stores.map((store) => store.close()));
    await redis.closeAll();
  });
  const lease = (now: number) => ({ now, leaseUntil: now + 1_000 });

  it('claims ids atomically: a held id is not claimed again, even within one batch', async () => {
    const { store, queue } = make();
    const now = Date.now();
    // The token of each claimed job's message (0: held), from one counter per queue.
    expect(await store.add(queue, [record('a', now), record('a', now), record('b', now)], now)).toEqual([
      1, 0, 2,
    ]);
    expect(await store.add(queue, [record('b', now)], now)).toEqual([0]);
    const counts = await store.counts(queue, now);
    expect(counts).toMatchObject({ waiting: 2, delayed: 0, active: 0 });
  });

  it('runs a queued delivery once: a duplicate is dropped while the lease lives, run when orphaned or expired', async () => {
    const { store, queue } = make();
    const now = Date.now();
    await store.add(queue, [record('a', now)], now);
    const first = await store.exchange(queue, {
      settle: [],
      deliveries: [{ id: 'a', token: 1 }],
      ...lease(now),
    });
    expect(first.verdicts).toEqual(['run']);
    expect((await store.getJob(queue, 'a', now))?.state).toBe('active');
    const duplicate = await store.exchange(queue, {
      settle: [],
      deliveries: [{ id: 'a', token: 1 }],
      ...lease(now),
    });
    expect(duplicate.verdicts).toEqual(['drop']);
    const orphaned = await store.exchange(queue, {
      settle: [],
      deliveries: [{ id: 'a', token: 1, orphaned: true }],
      ...lease(now),
    });
    expect(orphaned.verdicts).toEqual(['run']);
    const later = now + 5_000;
    const expired = await store.exchange(queue, {
      settle: [],
      deliveries: [{ id: 'a', token: 1 }],
      ...lease(later),
    });
    expect(expired.verdicts).toEqual(['run']);
  });

  it('a run that takes an active job over gets a lease of its own: the first run is refused renewal, outcome and release; the taker is not', async () => {
    const { store, queue } = make();
    const now = Date.now();
    await store.add(queue, [record('a', now)], now);
    const first = await store.exchange(queue, {
      settle: [],
      deliveries: [{ id: 'a', token: 1 }],
      ...lease(now),
    });
    expect(first).toMatchObject({ verdicts: ['run'] });
    expect(first.leases).toBeUndefined();
    const firstRun = { ...record('a', now), lease: '1' };
    // The broker redelivers the message after the first holder's channel closed: same token.
    const taken = await store.exchange(queue, {
      settle: [],
      deliveries: [{ id: 'a', token: 1, orphaned: true }],
      ...lease(now),
    });
    expect(taken).toMatchObject({ verdicts: ['run'], leases: ['1.1'] });
    const takerRun = { ...record('a', now), lease: '1.1' };
    // Before: both held lease '1', so the first run's renewals and outcome were accepted.
    expect(await store.extendLeases(queue, [firstRun, takerRun], now + 1_000)).toEqual({
      cancelled: [],
      lost: ['a'],
    });
    await store.release(queue, [firstRun], now);
    expect((await store.getJob(queue, 'a', now))?.state).toBe('active');
    const late = await store.exchange(queue, {
      settle: [{ kind: 'complete', record: firstRun, result: 'first' }],
      deliveries: [],
      ...lease(now),
    });
    expect(late.stale).toEqual(['a']);
    const own = await store.exchange(queue, {
      settle: [{ kind: 'complete', record: takerRun, result: 'taker' }],
      deliveries: [],
      ...lease(now),
    });
    expect(own.stale).toBeUndefined();
    expect(await store.getJob(queue, 'a', now)).toMatchObject({ state: 'completed', result: 'taker' });
  });

  it('a cancel of an active job is durable: read by the heartbeat, honoured by recovery, release and redelivery, and gone for a redriven run', async () => {
    const { store, queue } = make();
    const now = Date.now();
    const ids = ['dies', 'closes', 'redriven'];
    const tokens = await store.add(
      queue,
      ids.map((id) => record(id, now)),
      now,
    );
    const tokenOf = (id: string) => tokens[ids.indexOf(id)] ?? -1;
    await store.exchange(queue, {
      settle: [],
      deliveries: ids.map((id) => ({ id, token: tokenOf(id) })),
      ...lease(now),
    });
    for (const id of ['dies', 'closes', 'redriven']) {
      expect((await store.cancel(queue, id, now)).outcome).toBe('signalled');
    }
    // Retention (even with a DLQ age of 0) keeps the cancel records of active jobs.
    await store.maintain(queue, now, 3, { ...retention, deadAgeMs: 0 });
    // The heartbeat renews and reports the cancelled ids among those asked (in order), and the
    // ones it did not renew.
    const leased = (id: string) => ({ id, lease: String(tokenOf(id)) });
    expect(
      await store.extendLeases(queue, [leased('redriven'), leased('unknown'), leased('dies')], now + 1_000),
    ).toEqual({ cancelled: ['redriven', 'dies'], lost: ['unknown'] });
    // A redelivery of a cancelled run is not run, even orphaned or on an expired lease.
    const redelivered = await store.exchange(queue, {
      settle: [],
      deliveries: [{ id: 'dies', token: tokenOf('dies'), orphaned: true }],
      ...lease(now + 5_000),
    });
    expect(redelivered.verdicts).toEqual(['drop']);
    // The worker of 'dies' is gone: lease recovery dead-letters it as cancelled, no new message.
    const later = now + 5_000;
    await store.release(queue, [leased('closes')], later);
    const recovery = await store.maintain(queue, later, 3, retention);
    expect(recovery).toMatchObject({ recovered: 0, deadLettered: 2 });
    expect(recovery.publish.map(({ record: job }) => job.id)).not.toContain('dies');
    for (const id of ['dies', 'closes']) {
      const info = await store.getJob(queue, id, later);
      expect(info?.state).toBe('failed');
      expect(info?.errors.at(-1)).toMatchObject({ name: 'JobCancelledError', code: 'NOA_MQ_JOB_CANCELLED' });
    }
    // 'redriven' settles as cancelled, is redriven, and its new run is not reported cancelled.
    const cancelled = record('redriven', now, {
      attemptsMade: 1,
      errors: [{ attempt: 1, name: 'JobCancelledError', message: 'job redriven was cancelled', at: now }],
    });
    await store.exchange(queue, {
      settle: [{ kind: 'fail', record: cancelled, retryAt: null }],
      deliveries: [],
      ...lease(later),
    });
    const [again] = await store.redrive(queue, ['redriven'], later);
    expect(again?.record.id).toBe('redriven');
    const rerun = await store.exchange(queue, {
      settle: [],
      deliveries: [{ id: 'redriven', token: again!.token }],
      ...lease(later),
    });
    expect(rerun.verdicts).toEqual(['run']);
    expect(
      await store.extendLeases(queue, [{ id: 'redriven', lease: String(again!.token) }], later + 1_000),
    ).toEqual({
      cancelled: [],
      lost: [],
    });
  });

  it('drops deliveries of finished, unknown and drained jobs', async () => {
    const { store, queue } = make();
    const now = Date.now();
    await store.add(queue, [record('done', now), record('drained', now)], now);
    await store.exchange(queue, { settle: [], deliveries: [{ id: 'done', token: 1 }], ...lease(now) });
    await store.exchange(queue, {
      settle: [{ kind: 'complete', record: record('done', now), result: 7 }],
      deliveries: [],
      ...lease(now),
    });
    expect(await store.drain(queue, false, now)).toBe(1);
    const verdicts = await store.exchange(queue, {
      settle: [],
      deliveries: [
        { id: 'done', token: 1, orphaned: true },
        { id: 'never-added', token: 1 },
        { id: 'drained', token: 1 },
      ],
      ...lease(now),
    });
    expect(verdicts.verdicts).toEqual(['drop', 'drop', 'drop']);
    const done = await store.getJob(queue, 'done', now);
    expect(done).toMatchObject({ state: 'completed', result: 7 });
  });

  it('a retry gets a new token: the old message is stale, the new one runs', async () => {
    const { store, queue } = make();
    const now = Date.now();
    await store.add(queue, [record('a', now)], now);
    await store.exchange(queue, { settle: [], deliveries: [{ id: 'a', token: 1 }], ...lease(now) });
    const failed = record('a', now, {
      attemptsMade: 1,
      errors: [{ attempt: 1, name: 'Error', message: 'boom', at: now }],
    });
    const retry = await store.exchange(queue, {
      settle: [{ kind: 'fail', record: failed, retryAt: now + 60_000 }],
      deliveries: [],
      ...lease(now),
    });
    expect(retry.publish.map(({ record: job, token }) => [job.id, token, job.availableAt])).toEqual([
      ['a', 2, now + 60_000],
    ]);
    expect((await store.getJob(queue, 'a', now))?.state).toBe('delayed');
    const verdicts = await store.exchange(queue, {
      settle: [],
      deliveries: [
        { id: 'a', token: 1, orphaned: true },
        { id: 'a', token: 2 },
      ],
      ...lease(now + 60_000),
    });
    expect(verdicts.verdicts).toEqual(['drop', 'run']);
  });

  it("a new token is above the job's own, for a job stored before the queue's counter existed", async () => {
    const connection = redis.connect();
    const prefix = uniqueName('state');
    const store = new RedisJobStateStore({ connection, prefix });
    stores.push(store);
    const queue = uniqueName('q');
    const now = Date.now();
    expect(await store.add(queue, [record('old', now)], now)).toEqual([1]);
    // As the previous version left it: retried 49 times on a per-job counter.
    await connection.hset(`${prefix}:{${queue}}:j:old`, 't', '50');
    expect(
      (await store.exchange(queue, { settle: [], deliveries: [{ id: 'old', token: 50 }], ...lease(now) }))
        .verdicts,
    ).toEqual(['run']);
    const failed = record('old', now, {
      attemptsMade: 1,
      errors: [{ attempt: 1, name: 'Error', message: 'boom', at: now }],
    });
    const retry = await store.exchange(queue, {
      settle: [{ kind: 'fail', record: { ...failed, lease: '50' }, retryAt: now }],
      deliveries: [],
      ...lease(now),
    });
    expect(retry.publish.map(({ token }) => token)).toEqual([51]);
    expect(await store.add(queue, [record('next', now)], now)).toEqual([52]);
  });

  it('requeues deliveries while the queue is paused', async () => {
    const { store, queue } = make();
    const now = Date.now();
    await store.add(queue, [record('a', now)], now);
    await store.pause(queue);
    expect(await store.isPaused(queue)).toBe(true);
    expect(
      (await store.exchange(queue, { settle: [], deliveries: [{ id: 'a', token: 1 }], ...lease(now) }))
        .verdicts,
    ).toEqual(['requeue']);
    await store.resume(queue);
    expect(
      (await store.exchange(queue, { settle: [], deliveries: [{ id: 'a', token: 1 }], ...lease(now) }))
        .verdicts,
    ).toEqual(['run']);
  });

  it('cancels a queued job (its message is then dropped) and signals an active one to every subscriber', async () => {
    const { store, queue } = make();
    const now = Date.now();
    const [queuedToken, runningToken] = await store.add(
      queue,
      [record('queued', now), record('running', now)],
      now,
    );
    const events: unknown[] = [];
    const unsubscribe = await store.subscribe(queue, (event) => events.push(event));
    expect((await store.cancel(queue, 'queued', now)).outcome).toBe('removed');
    await store.exchange(queue, {
      settle: [],
      deliveries: [{ id: 'running', token: runningToken! }],
      ...lease(now),
    });
    expect((await store.cancel(queue, 'running', now)).outcome).toBe('signalled');
    expect((await store.cancel(queue, 'missing', now)).outcome).toBe('not-found');
    const verdicts = await store.exchange(queue, {
      settle: [],
      deliveries: [{ id: 'queued', token: queuedToken! }],
      ...lease(now),
    });
    expect(verdicts.verdicts).toEqual(['drop']);
    const cancelled = await store.getJob(queue, 'queued', now);
    expect(cancelled?.state).toBe('failed');
    expect(cancelled?.errors.at(-1)?.code).toBe('NOA_MQ_JOB_CANCELLED');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(events).toEqual([{ type: 'cancel', id: 'running' }]);
    unsubscribe();
  });

  it('releases a claim whose publish failed (the add can be retried), but never a delivered job', async () => {
    const { store, queue } = make();
    const now = Date.now();
    const [lost, delivered] = await store.add(queue, [record('lost', now), record('delivered', now)], now);
    await store.exchange(queue, {
      settle: [],
      deliveries: [{ id: 'delivered', token: delivered! }],
      ...lease(now),
    });
    await store.unclaim(queue, [
      { id: 'lost', token: lost! },
      { id: 'delivered', token: delivered! },
    ]);
    expect(await store.getJob(queue, 'lost', now)).toBeUndefined();
    expect((await store.getJob(queue, 'delivered', now))?.state).toBe('active');
    // Claimed again, under a token the first claim never had.
    expect(await store.add(queue, [record('lost', now)], now)).toEqual([3]);
  });

  it('republishes an unconfirmed outbox entry with the same token; a confirmed one is not', async () => {
    const { store, queue } = make(100);
    const now = Date.now();
    const [unconfirmed, confirmed] = await store.add(
      queue,
      [record('unconfirmed', now), record('confirmed', now)],
      now,
    );
    await store.confirm(queue, [{ id: 'confirmed', token: confirmed! }]);
    const early = await store.maintain(queue, now, 3, retention);
    expect(early.publish).toEqual([]);
    const late = await store.maintain(queue, now + 200, 3, retention);
    expect(late.publish.map(({ record: job, token }) => [job.id, token])).toEqual([
      ['unconfirmed', unconfirmed],
    ]);
  });

  it('recovers an expired lease with a new message, and dead-letters after maxStalls', async () => {
    const { store, queue } = make();
    let now = Date.now();
    await store.add(queue, [record('a', now)], now);
    await store.confirm(queue, [{ id: 'a', token: 1 }]);
    let token = 1;
    for (let stall = 1; stall <= 2; stall += 1) {
      await store.exchange(queue, { settle: [], deliveries: [{ id: 'a', token }], ...lease(now) });
      now += 2_000;
      const result = await store.maintain(queue, now, 1, retention);
      if (stall === 1) {
        expect(result).toMatchObject({ recovered: 1, deadLettered: 0 });
        expect(result.publish.map((item) => [item.record.id, item.token])).toEqual([['a', 2]]);
        token = 2;
      } else {
        expect(result).toMatchObject({ recovered: 0, deadLettered: 1, publish: [] });
      }
    }
    const dead = await store.listDead(queue, 0, 10, now);
    expect(dead.map((job) => [job.id, job.state, job.errors.at(-1)?.code])).toEqual([
      ['a', 'failed', 'NOA_MQ_JOB_STALLED'],
    ]);
    const redriven = await store.redrive(queue, ['a'], now);
    expect(redriven.map((item) => [item.record.id, item.token, item.record.attemptsMade])).toEqual([
      ['a', 3, 0],
    ]);
    expect(await store.purgeDead(queue, undefined)).toBe(0);
  });
});
