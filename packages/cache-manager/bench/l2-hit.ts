/**
 * The L2-hit get alone, ours against its floor (MGET + msgpackr unpack of the same bytes), in
 * alternating short samples, for profiling and A/B checks without the whole `pnpm bench`:
 *
 *   node --conditions=@noa/source --import tsx bench/l2-hit.ts
 *
 * It prints ours/floor in wall-clock ops/s and in ops per CPU-second of this process (the
 * second is steadier on shared cores). Environment:
 * - `NOA_L2_BASELINE`: path of another cache-manager `src/index.ts` (e.g. main's checkout), a
 *   "before" contender in the same rounds; the floor then decodes the bytes it wrote.
 *   `NOA_L2_IMPL`: such a path used as "ours" instead of this checkout (for alternating
 *   processes: a second copy loaded beside ours shares its heap and GC state).
 * - `NOA_L2_ONLY` (`ours`, `before` or `floor`): run that side alone for `NOA_L2_ROUNDS` s;
 *   with `NOA_L2_PROFILE=<dir>` a CPU profile of those calls alone (no set-up, loading or
 *   warm-up) is written there, an allocation profile with `NOA_L2_PROFILE_HEAP=1`.
 * - `NOA_L2_PAYLOADS` (comma-separated labels, default `10 KB,100 KB`), `NOA_L2_ROUNDS`
 *   (default 7), `NOA_L2_IN_FLIGHT` (default 32, as the bench), `NOA_L2_READER_L1` (the
 *   reader's `l1` option as JSON, default `{"maxEntries":1}`: every get misses L1; `false`: L2
 *   only), `NOA_L2_BASELINE_L1` (the baseline reader's, when it differs: default the same).
 * - `NOA_L2_BENTO=1`: bentocache's L2-only store (the anchor of the bench's L2-hit rows) as one
 *   more side, with ours/bento and before/bento printed like ours/before.
 * V8's allocation-site pretenuring can flip a decoder's values into old space for the rest of
 * a process (GC then costs 2-3x): run with `--no-allocation-site-pretenuring` for steady A/B
 * numbers, and without it to see what users get.
 * It uses the shared Redis (`REDIS_URL`) under its own prefix, deleted at the end.
 */
import { clearRedisPrefix, serviceUrl } from '@noa/testkit';
import { median } from '@noa/testkit/bench';
import { Redis } from 'ioredis';
import { Cache as OwnCache } from '../src/index.js';
import { dataKeyMarker } from '../src/l2/redis-tier.js';
import { mgetAndUnpack } from './floor.js';
import { opsWithin } from './measure.js';
import { payloads } from './payloads.js';

const url = serviceUrl('redis');
const prefix = `noa_l2hit_${process.pid}:`;
const inFlight = Number(process.env.NOA_L2_IN_FLIGHT ?? 32);
const rounds = Number(process.env.NOA_L2_ROUNDS ?? 7);
const only = process.env.NOA_L2_ONLY;
const labels = (process.env.NOA_L2_PAYLOADS ?? '10 KB,100 KB').split(',') as (keyof typeof payloads)[];
const KEYS = 200;

type CacheClass = typeof OwnCache;
// `NOA_L2_IMPL`: another checkout's `src/index.ts` as "ours", alone in its process (a baseline
// loaded beside ours shares its heap, and GC states, with it).
const Cache: CacheClass = process.env.NOA_L2_IMPL
  ? ((await import(process.env.NOA_L2_IMPL)) as { Cache: CacheClass }).Cache
  : OwnCache;
const baselinePath = process.env.NOA_L2_BASELINE;
const Baseline: CacheClass | undefined = baselinePath
  ? ((await import(baselinePath)) as { Cache: CacheClass }).Cache
  : undefined;

const redis = new Redis(url);
const raw = new Redis(url);
// bentocache's L2-only store, as in index.bench.ts, loaded only when asked for.
const bento =
  process.env.NOA_L2_BENTO === '1'
    ? await (async () => {
        const [{ BentoCache, bentostore }, { redisDriver }] = await Promise.all([
          import('bentocache'),
          import('bentocache/drivers/redis'),
        ]);
        return new BentoCache({
          default: 'l2only',
          prefix: `${prefix}bento`,
          stores: { l2only: bentostore().useL2Layer(redisDriver({ connection: redis })) },
        });
      })()
    : undefined;

/** A writer and an L2 reader (L1 of one entry: every get misses L1) under `cachePrefix`. */
async function contender(
  Implementation: CacheClass,
  cachePrefix: string,
  value: unknown,
  keys: string[],
  l1Variable = 'NOA_L2_READER_L1',
) {
  const writer = new Implementation({ redis, prefix: cachePrefix, bus: false });
  const l1 = JSON.parse(process.env[l1Variable] ?? process.env.NOA_L2_READER_L1 ?? '{"maxEntries":1}') as
    | false
    | { maxEntries?: number };
  const reader = new Implementation({ redis, prefix: cachePrefix, bus: false, l1 });
  await Promise.all([writer.ready(), reader.ready()]);
  // Reach the steady state of shared structures first (see learnShapes in index.bench.ts).
  await writer.set('shapes:1', value);
  await writer.set('shapes:2', value);
  await new Promise((resolve) => setTimeout(resolve, 50));
  await Promise.all(keys.map((key) => writer.set(key, value, { ttlMs: 3_600_000 })));
  return { writer, reader };
}

/**
 * With `NOA_L2_PROFILE=<dir>`, a CPU profile of the measured calls alone (not the set-up,
 * module loading or warm-up, as `--cpu-prof` would include); returns the function that stops it.
 */
async function startProfile(): Promise<((name: string) => Promise<void>) | undefined> {
  const directory = process.env.NOA_L2_PROFILE;
  if (!directory) return undefined;
  const { Session } = await import('node:inspector/promises');
  const { mkdir, writeFile } = await import('node:fs/promises');
  const session = new Session();
  session.connect();
  const heap = process.env.NOA_L2_PROFILE_HEAP === '1';
  if (heap) {
    await session.post('HeapProfiler.enable');
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
  } else {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 100 });
    await session.post('Profiler.start');
  }
  return async (name) => {
    const { profile } = heap
      ? await session.post('HeapProfiler.stopSampling')
      : await session.post('Profiler.stop');
    if (heap) name = `${name}.heapprofile`;
    await mkdir(directory, { recursive: true });
    await writeFile(`${directory}/${name}${heap ? '' : '.cpuprofile'}`, JSON.stringify(profile));
    session.disconnect();
  };
}

try {
  for (const label of labels) {
    const value = payloads[label];
    const keys = Array.from({ length: KEYS }, (_, index) => `l2:${label}:${index}`);
    const oursPrefix = `${prefix}ours:${label}:`;
    const ours = await contender(Cache, oursPrefix, value, keys);
    const before = Baseline
      ? await contender(Baseline, `${prefix}before:${label}:`, value, keys, 'NOA_L2_BASELINE_L1')
      : undefined;
    // The floor decodes the bytes the baseline wrote when there is one (the format of main).
    const floorPrefix = before ? `${prefix}before:${label}:` : oursPrefix;
    const floor = await mgetAndUnpack(raw, floorPrefix, `${floorPrefix}${dataKeyMarker}`);
    const sides: Record<string, (index: number) => Promise<unknown>> = {
      ours: (index) => ours.reader.get(keys[index % KEYS]!),
      floor: (index) => floor.fetchAndUnpack(keys[index % KEYS]!),
    };
    if (before) sides.before = (index) => before.reader.get(keys[index % KEYS]!);
    if (bento) {
      // A number of ms, as the bench passes it (a string is parsed on every call).
      await Promise.all(keys.map((key) => bento.set({ key, value, ttl: 3_600_000 })));
      sides.bento = (index) => bento.get({ key: keys[index % KEYS]! });
    }
    if (only) {
      const side = sides[only];
      if (!side) throw new Error(`NOA_L2_ONLY: no side ${only}`);
      await opsWithin(side, inFlight, 500); // warm-up, outside the profile
      const profiler = await startProfile();
      let count = 0;
      for (let round = 0; round < rounds; round += 1) count += await opsWithin(side, inFlight, 1_000);
      await profiler?.(`${only}-${label.replace(' ', '')}`);
      console.log(`${label}: ran ${only} alone for ${rounds} s, ${Math.round(count)} calls`);
    } else {
      // Wall-clock ops/s depend on what else the shared cores run; ops per CPU-second of this
      // process measure what we spend per get, which is what this script is for.
      const ops: Record<string, number[]> = {};
      const cpu: Record<string, number[]> = {};
      for (const name of Object.keys(sides)) {
        ops[name] = [];
        cpu[name] = [];
      }
      for (let round = 0; round < rounds + 1; round += 1) {
        // Alternate the order each round, so neither side always runs on a warmer process.
        const order = round % 2 === 0 ? Object.keys(sides) : Object.keys(sides).reverse();
        for (const name of order) {
          const cpuBefore = process.cpuUsage();
          const wall = performance.now();
          const perSecond = await opsWithin(sides[name]!, inFlight, 300);
          const used = process.cpuUsage(cpuBefore);
          const count = (perSecond * (performance.now() - wall)) / 1_000;
          if (round === 0) continue; // warm-up
          ops[name]!.push(perSecond);
          cpu[name]!.push(count / ((used.user + used.system) / 1e6));
        }
      }
      const ratio = (table: Record<string, number[]>, name: string) =>
        median(table[name]!.map((value, index) => value / table.floor![index]!)).toFixed(3);
      const line = [
        `${label}, ${inFlight} in flight: ours/floor ${ratio(ops, 'ours')} wall, ${ratio(cpu, 'ours')} CPU`,
      ];
      // One side over another round by round (both ran in the same seconds): the median and
      // the range over rounds.
      const versus = (table: Record<string, number[]>, side: string, other: string) => {
        const ratios = table[side]!.map((value, index) => value / table[other]![index]!);
        return `${median(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)})`;
      };
      if (bento) {
        line.push(`ours/bento ${versus(ops, 'ours', 'bento')} wall, ${versus(cpu, 'ours', 'bento')} CPU`);
        if (before)
          line.push(
            `before/bento ${versus(ops, 'before', 'bento')} wall, ${versus(cpu, 'before', 'bento')} CPU`,
          );
      }
      if (before) {
        line.push(`before/floor ${ratio(ops, 'before')} wall, ${ratio(cpu, 'before')} CPU`);
        // The A/B itself, and each side's median reads per CPU-second.
        line.push(`ours/before ${versus(ops, 'ours', 'before')} wall, ${versus(cpu, 'ours', 'before')} CPU`);
        line.push(
          `per CPU-s ours ${Math.round(median(cpu.ours!))}, before ${Math.round(median(cpu.before!))}, floor ${Math.round(median(cpu.floor!))}`,
        );
      }
      console.log(line.join('; '));
    }
    if (bento) await Promise.all(keys.map((key) => bento.delete({ key })));
    await Promise.all([
      ours.writer.close(),
      ours.reader.close(),
      before?.writer.close(),
      before?.reader.close(),
    ]);
  }
} finally {
  await bento?.disconnectAll();
  await clearRedisPrefix(prefix, url);
  redis.disconnect();
  raw.disconnect();
}
