import path from 'node:path';
import { isReachable, serviceUrl } from '@noa/testkit';
import {
  type BenchCase,
  concurrentOpsPerSecond,
  opsPerSecond,
  quantile,
  runBench,
  size,
} from '@noa/testkit/bench';
import genericPool from 'generic-pool';
import pg from 'pg';
import tarn from 'tarn';
import { Pool } from '../src/index.js';
import { createPgPool } from '../src/pg.js';

// Side-by-side cases: ours and the named anchors, same inputs, same service, one run.
const benchDir = path.dirname(new URL(import.meta.url).pathname);
const cycles = size(300_000, 2_000);
const MAX = 10;
const WAITERS = 64;

interface Trivial {
  id: number;
}
let nextId = 0;
const makeTrivial = (): Trivial => {
  nextId += 1;
  return { id: nextId };
};

const ours = new Pool<Trivial>({ create: async () => makeTrivial(), destroy: async () => {} }, { max: MAX });
const generic = genericPool.createPool<Trivial>(
  { create: async () => makeTrivial(), destroy: async () => {} },
  { max: MAX },
);
const tarnPool = new tarn.Pool<Trivial>({
  create: (callback: (error: Error | null, resource: Trivial) => void) => callback(null, makeTrivial()),
  destroy: () => {},
  min: 0,
  max: MAX,
});

const oursCycle = async () => {
  const resource = await ours.acquire();
  ours.release(resource);
};
const genericCycle = async () => {
  const resource = await generic.acquire();
  await generic.release(resource);
};
const tarnCycle = async () => {
  const resource = await tarnPool.acquire().promise;
  tarnPool.release(resource);
};

const cases: BenchCase[] = [];
for (const [anchor, cycle] of [
  ['generic-pool@3.9.0', genericCycle],
  ['tarn@3.1.2', tarnCycle],
] as const) {
  cases.push({
    case: 'core acquire+release, sequential',
    unit: 'ops/s',
    better: 'higher',
    goal: 2,
    anchor,
    ours: () => opsPerSecond(cycles, oursCycle),
    theirs: () => opsPerSecond(cycles, cycle),
  });
  cases.push({
    case: `core acquire+release, ${WAITERS} concurrent on max ${MAX}`,
    unit: 'ops/s',
    better: 'higher',
    goal: 2,
    anchor,
    ours: () => concurrentOpsPerSecond(cycles, WAITERS, oursCycle),
    theirs: () => concurrentOpsPerSecond(cycles, WAITERS, cycle),
  });
}

const pgUrl = serviceUrl('postgres');
const pgUp = await isReachable('postgres');
const ourPg = pgUp ? createPgPool({ primary: pgUrl, pool: { max: MAX } }) : undefined;
const rawPg = pgUp ? new pg.Pool({ connectionString: pgUrl, max: MAX }) : undefined;
if (ourPg && rawPg) {
  const queries = size(40_000, 200);
  cases.push({
    case: 'SELECT 1 via pg, concurrency 32',
    unit: 'ops/s',
    better: 'higher',
    goal: 0.97,
    anchor: 'pg.Pool@8.23.1',
    rounds: 15,
    ours: () => concurrentOpsPerSecond(queries, 32, () => ourPg.query('SELECT 1')),
    theirs: () => concurrentOpsPerSecond(queries, 32, () => rawPg.query('SELECT 1')),
  });
  const acquireP99 = async (acquire: () => Promise<() => Promise<void>>): Promise<number> => {
    const waits: number[] = [];
    await concurrentOpsPerSecond(size(20_000, 200), WAITERS, async () => {
      const started = performance.now();
      const done = await acquire();
      waits.push(performance.now() - started);
      await done();
    });
    return quantile(waits, 0.99);
  };
  cases.push({
    case: `pg acquire wait p99, ${WAITERS} callers on max ${MAX}`,
    unit: 'ms',
    better: 'lower',
    goal: 1,
    anchor: 'pg.Pool@8.23.1',
    rounds: 9,
    ours: () =>
      acquireP99(async () => {
        const client = await ourPg.acquire('primary');
        return async () => {
          await client.query('SELECT 1');
          ourPg.release(client);
        };
      }),
    theirs: () =>
      acquireP99(async () => {
        const client = await rawPg.connect();
        return async () => {
          await client.query('SELECT 1');
          client.release();
        };
      }),
  });
} else {
  console.log(`skipped: no Postgres at ${pgUrl} (pg cases left out)`);
}

await runBench('@noa/connection-pool', benchDir, cases);
await Promise.all([ours.close(), generic.drain().then(() => generic.clear()), tarnPool.destroy()]);
await ourPg?.close();
await rawPg?.end();
