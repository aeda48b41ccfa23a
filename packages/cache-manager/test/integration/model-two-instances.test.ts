import { ManualClock } from '@noa/core';
import { generousDeadlineMs } from '@noa/testkit';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { Cache, type CacheOptions, type KeyTtl } from '../../src/index.js';
import { settleBus } from './bus-barrier.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

/**
 * Model-based test: two instances (two app servers, each with its own client and L1) on one
 * Redis and one bus, driven by random command sequences and checked after every command
 * against a plain map of key → { value, tags, expiresAt, staleUntil } on a shared ManualClock.
 *
 * After each command the bus is settled deterministically: the instance that ran it deletes a
 * barrier key of its own, and the test waits until the other instance's `onInvalidation` sees
 * that `del`. The command's own messages went through the same outbox and connection before
 * it (a `set`'s PUBLISH is queued once its SET has landed, which is before the barrier's DEL is
 * answered), so Redis delivered them first. Then every L1 copy of both instances (`getLocal`,
 * which reads nothing) must hold the model's fresh value or nothing: never a value a delivered
 * set, delete, tag delete, expire or clear replaced.
 *
 * Entry TTLs are a minute or more of model time, far beyond a run's real duration, so Redis
 * never expires a key on its own: freshness is the clock's alone, as the model's.
 * FC_SEED=<seed> (and FC_PATH) replays a failure; FC_RUNS overrides the number of runs.
 */

const PATHS = ['', 'a', 'a/b'] as const;
type Path = (typeof PATHS)[number];
const KEYS = ['k0', 'k1', 'k2'] as const;
const TAGS = ['t0', 't1'] as const;
const TTLS = [60_000, 150_000, Number.POSITIVE_INFINITY] as const;
const ADVANCES = [1_000, 40_000, 70_000, 200_000] as const;

type Value = number | string | { id: number; name: string } | null;
interface WriteOpts {
  ttlMs: number;
  tags: string[];
}
type Command =
  | { op: 'set'; on: number; path: Path; key: string; value: Value; opts: WriteOpts }
  | { op: 'setMany'; on: number; path: Path; items: { key: string; value: Value; opts: WriteOpts }[] }
  | { op: 'get'; on: number; path: Path; key: string }
  | { op: 'has'; on: number; path: Path; key: string }
  | { op: 'getMany'; on: number; path: Path; keys: string[] }
  | { op: 'getOrSet'; on: number; path: Path; key: string; value: Value; opts: WriteOpts; fail: boolean }
  | { op: 'getOrSetMany'; on: number; path: Path; items: { key: string; value: Value }[]; opts: WriteOpts }
  | { op: 'pull'; on: number; path: Path; key: string }
  | { op: 'ttl'; on: number; path: Path; key: string }
  | { op: 'expireByTag'; on: number; path: Path; tag: string }
  | { op: 'delete'; on: number; path: Path; key: string }
  | { op: 'deleteMany'; on: number; path: Path; keys: string[] }
  | { op: 'deleteByTag'; on: number; path: Path; tag: string }
  | { op: 'expire'; on: number; path: Path; key: string }
  | { op: 'clear'; on: number; path: Path }
  | { op: 'advance'; ms: number }
  | { op: 'race'; first: RaceCommand; second: RaceCommand; gap: number };

/** Commands run two at a time by `race`: each is one change or read per key (no pull, no failing source). */
type RaceCommand = Extract<
  Command,
  {
    op:
      | 'set'
      | 'setMany'
      | 'get'
      | 'has'
      | 'getMany'
      | 'getOrSet'
      | 'delete'
      | 'deleteMany'
      | 'deleteByTag'
      | 'expire'
      | 'clear';
  }
>;

interface ModelEntry {
  value: Value;
  tags: string[];
  expiresAt: number;
  staleUntil: number;
}

/** Full key of the model: the namespace path and the key (paths hold no '|'). */
const fullKey = (path: Path, key: string) => `${path}|${key}`;
/** A tag as a namespace owns it (`tagScope: 'namespace'`). */
const scopedTag = (path: Path, tag: string) => `${path}|${tag}`;

/** graceBackoffMs of the caches: a stale value served after a factory failure is fresh for this long, on that instance. */
const GRACE_BACKOFF_MS = 5_000;

class Model {
  readonly entries = new Map<string, ModelEntry>();
  /**
   * Per instance: back-off copies (README getOrSet, Grace): after a failed factory served a
   * value in grace, that instance's L1 treats it as fresh until `expiresAt`, unless L1 evicts
   * it (a tiny L1) or a change of the key drops it.
   */
  readonly backoffs = [new Map<string, { value: Value; expiresAt: number }>(), new Map()];
  constructor(
    readonly clock: ManualClock,
    readonly graceMs: number,
  ) {}
  fresh(path: Path, key: string): Value | undefined {
    const entry = this.entries.get(fullKey(path, key));
    return entry !== undefined && this.clock.now() < entry.expiresAt ? entry.value : undefined;
  }
  /** The back-off copy instance `on` may serve for the key, if any. */
  backoff(on: number, path: Path, key: string): { value: Value } | undefined {
    const copy = this.backoffs[on]!.get(fullKey(path, key));
    return copy !== undefined && this.clock.now() < copy.expiresAt ? copy : undefined;
  }
  /** What a read on instance `on` may answer: the fresh value, or a back-off copy. */
  allowed(on: number, path: Path, key: string): (Value | undefined)[] {
    const copy = this.backoff(on, path, key);
    return copy === undefined ? [this.fresh(path, key)] : [this.fresh(path, key), copy.value];
  }
  clone(): Model {
    const copy = new Model(this.clock, this.graceMs);
    for (const [name, entry] of this.entries) copy.entries.set(name, { ...entry });
    this.backoffs.forEach((copies, index) => {
      for (const [name, item] of copies) copy.backoffs[index]!.set(name, { ...item });
    });
    return copy;
  }
  /** What a change does to the model, with no result to check (the orders a race may take). */
  effect(command: RaceCommand, superseded = false): void {
    const p = command.path;
    switch (command.op) {
      case 'set':
        this.write(p, command.key, command.value, command.opts);
        return;
      case 'setMany':
        for (const item of command.items) this.write(p, item.key, item.value, item.opts);
        return;
      case 'getOrSet':
        // Superseded by a change that reached the key while it ran: served, not cached.
        if (!superseded && !this.isFresh(p, command.key))
          this.write(p, command.key, command.value, command.opts);
        return;
      case 'delete':
        this.remove(fullKey(p, command.key));
        return;
      case 'deleteMany':
        for (const k of command.keys) this.remove(fullKey(p, k));
        return;
      case 'deleteByTag': {
        const tag = scopedTag(p, command.tag);
        for (const [name, entry] of [...this.entries]) if (entry.tags.includes(tag)) this.remove(name);
        return;
      }
      case 'expire':
        this.expire(p, command.key);
        return;
      case 'clear':
        for (const name of [...this.entries.keys()]) {
          const entryPath = name.slice(0, name.indexOf('|'));
          if (p === '' || entryPath === p || entryPath.startsWith(`${p}/`)) this.remove(name);
        }
        return;
      default:
        return;
    }
  }
  /** Any change of a key drops the back-off copies of it (bus messages, or the instance's own change). */
  changed(name: string): void {
    for (const copies of this.backoffs) copies.delete(name);
  }
  isFresh(path: Path, key: string): boolean {
    const entry = this.entries.get(fullKey(path, key));
    return entry !== undefined && this.clock.now() < entry.expiresAt;
  }
  write(path: Path, key: string, value: Value, opts: WriteOpts): void {
    const now = this.clock.now();
    const expiresAt = now + opts.ttlMs;
    this.changed(fullKey(path, key));
    this.entries.set(fullKey(path, key), {
      value,
      tags: opts.tags.map((tag) => scopedTag(path, tag)),
      expiresAt,
      staleUntil: expiresAt + this.graceMs,
    });
  }
  /** Whether `delete` may say the key was there: yes (fresh or in grace), no, or either (past grace: Redis still holds it). */
  presence(path: Path, key: string): 'yes' | 'no' | 'either' {
    const entry = this.entries.get(fullKey(path, key));
    if (entry === undefined) return 'no';
    return this.clock.now() < entry.staleUntil ? 'yes' : 'either';
  }
  remove(name: string): void {
    this.entries.delete(name);
    this.changed(name);
  }
  /** `ttl(key)`: undefined when absent or past grace. */
  ttl(path: Path, key: string): { ttlMs: number; inGrace: boolean; untilGoneMs: number } | undefined {
    const entry = this.entries.get(fullKey(path, key));
    const now = this.clock.now();
    if (entry === undefined || now >= entry.staleUntil) return undefined;
    const fresh = now < entry.expiresAt;
    return { ttlMs: fresh ? entry.expiresAt - now : 0, inGrace: !fresh, untilGoneMs: entry.staleUntil - now };
  }
  /** The value in grace, if any. */
  inGrace(path: Path, key: string): { value: Value } | undefined {
    const entry = this.entries.get(fullKey(path, key));
    const now = this.clock.now();
    return entry !== undefined && now >= entry.expiresAt && now < entry.staleUntil ? entry : undefined;
  }
  expire(path: Path, key: string): void {
    const name = fullKey(path, key);
    this.changed(name);
    const entry = this.entries.get(name);
    const now = this.clock.now();
    if (entry === undefined || now >= entry.expiresAt) return;
    const grace = Number.isFinite(entry.expiresAt) ? entry.staleUntil - entry.expiresAt : this.graceMs;
    this.entries.set(name, { ...entry, expiresAt: now, staleUntil: Math.min(entry.staleUntil, now + grace) });
  }
}

const value: fc.Arbitrary<Value> = fc.oneof(
  fc.integer({ min: 0, max: 9 }),
  fc.constantFrom('x', 'y', ''),
  fc.constant(null),
  // A recurring record shape: shared msgpack structures are proposed and used after two writes.
  fc.record({ id: fc.integer({ min: 0, max: 9 }), name: fc.constantFrom('ada', 'grace') }),
);
const opts: fc.Arbitrary<WriteOpts> = fc.record({
  ttlMs: fc.constantFrom(...TTLS),
  tags: fc.subarray([...TAGS]),
});
const on = fc.integer({ min: 0, max: 1 });
const path = fc.constantFrom(...PATHS);
const key = fc.constantFrom(...KEYS);
const keys = fc.uniqueArray(key, { minLength: 1, maxLength: KEYS.length });

/** The commands both draws (a sequence and a race) share. */
const setCommand = fc.record({ op: fc.constant('set' as const), on, path, key, value, opts });
const getCommand = fc.record({ op: fc.constant('get' as const), on, path, key });
const hasCommand = fc.record({ op: fc.constant('has' as const), on, path, key });
const getManyCommand = fc.record({ op: fc.constant('getMany' as const), on, path, keys });
const deleteCommand = fc.record({ op: fc.constant('delete' as const), on, path, key });
const deleteManyCommand = fc.record({ op: fc.constant('deleteMany' as const), on, path, keys });
const expireCommand = fc.record({ op: fc.constant('expire' as const), on, path, key });
const clearCommand = fc.record({ op: fc.constant('clear' as const), on, path });
const setManyCommand = fc.record({
  op: fc.constant('setMany' as const),
  on,
  path,
  items: fc.uniqueArray(fc.record({ key, value, opts }), {
    minLength: 1,
    maxLength: 3,
    selector: (item) => item.key,
  }),
});
const deleteByTagCommand = fc.record({
  op: fc.constant('deleteByTag' as const),
  on,
  path,
  tag: fc.constantFrom(...TAGS),
});

const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: setCommand },
  {
    weight: 1,
    arbitrary: setManyCommand,
  },
  { weight: 3, arbitrary: getCommand },
  { weight: 1, arbitrary: hasCommand },
  { weight: 2, arbitrary: getManyCommand },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('getOrSet' as const),
      on,
      path,
      key,
      value,
      opts,
      fail: fc.constantFrom(false, false, true),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('getOrSetMany' as const),
      on,
      path,
      items: fc.uniqueArray(fc.record({ key, value }), {
        minLength: 1,
        maxLength: 3,
        selector: (item) => item.key,
      }),
      opts,
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('pull' as const), on, path, key }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('ttl' as const), on, path, key }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('expireByTag' as const),
      on,
      path,
      tag: fc.constantFrom(...TAGS),
    }),
  },
  { weight: 2, arbitrary: deleteCommand },
  { weight: 1, arbitrary: deleteManyCommand },
  {
    weight: 2,
    arbitrary: deleteByTagCommand,
  },
  { weight: 1, arbitrary: expireCommand },
  { weight: 1, arbitrary: clearCommand },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.constantFrom(...ADVANCES) }),
  },
);

/** The commands a race draws from: reads and changes of a key weigh most. */
const raceCommand: fc.Arbitrary<RaceCommand> = fc.oneof(
  { weight: 4, arbitrary: getCommand },
  { weight: 1, arbitrary: hasCommand },
  { weight: 2, arbitrary: getManyCommand },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('getOrSet' as const),
      on,
      path,
      key,
      value,
      opts,
      fail: fc.constant(false),
    }),
  },
  { weight: 4, arbitrary: setCommand },
  {
    weight: 1,
    arbitrary: setManyCommand,
  },
  { weight: 3, arbitrary: deleteCommand },
  { weight: 1, arbitrary: deleteManyCommand },
  {
    weight: 2,
    arbitrary: deleteByTagCommand,
  },
  { weight: 2, arbitrary: expireCommand },
  { weight: 1, arbitrary: clearCommand },
);
/** The key (and path) a race command names, if one. */
function raceTarget(item: RaceCommand): { path: Path; key: string } | undefined {
  if ('key' in item) return { path: item.path, key: item.key };
  if ('keys' in item) return { path: item.path, key: item.keys[0]! };
  if ('items' in item) return { path: item.path, key: item.items[0]!.key };
  return undefined;
}
/** `item` aimed at `target`'s key: races of two commands of one key are the ones that matter. */
function aimAt(item: RaceCommand, target: { path: Path; key: string }): RaceCommand {
  if ('key' in item) return { ...item, path: target.path, key: target.key };
  if ('keys' in item) return { ...item, path: target.path, keys: [...new Set([target.key, ...item.keys])] };
  if ('items' in item) {
    const [head, ...rest] = item.items;
    return {
      ...item,
      path: target.path,
      items: [{ ...head!, key: target.key }, ...rest.filter((entry) => entry.key !== target.key)],
    };
  }
  return { ...item, path: target.path };
}
const race: fc.Arbitrary<Command> = fc
  .record({
    op: fc.constant('race' as const),
    first: raceCommand,
    second: raceCommand,
    sameKey: fc.constantFrom(true, true, true, false),
    // Event-loop turns between the two starts: the second lands at another point of the first.
    gap: fc.integer({ min: 0, max: 6 }),
  })
  .map(({ sameKey, ...drawn }) => {
    const target = raceTarget(drawn.first);
    return sameKey && target !== undefined ? { ...drawn, second: aimAt(drawn.second, target) } : drawn;
  });
const anyCommand: fc.Arbitrary<Command> = fc.oneof(
  { weight: 3, arbitrary: command },
  { weight: 2, arbitrary: race },
);

/** Per-run cache settings: grace on or off, batching, write mode, a tiny L1 (evictions), serializer. */
const settings = fc.record({
  graceMs: fc.constantFrom(0, 30_000),
  batching: fc.boolean(),
  writeMode: fc.constantFrom('await' as const, 'background' as const),
  maxEntries: fc.constantFrom(4, 1_000),
  serializer: fc.constantFrom('msgpack' as const, 'json' as const),
});

const numRuns = Number(process.env.FC_RUNS ?? 25);
const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const replayPath = process.env.FC_PATH;

const base = testPrefix('model2');
const clientA = redisUp ? new Redis(redisUrl) : undefined;
const clientB = redisUp ? new Redis(redisUrl) : undefined;
afterAll(async () => {
  if (redisUp) await dropPrefix(base);
  clientA?.disconnect();
  clientB?.disconnect();
});

function describeCommand(command: Command): string {
  return JSON.stringify(command, (_, item) => (item === Number.POSITIVE_INFINITY ? 'Infinity' : item));
}

async function runCommands(
  run: number,
  config: {
    graceMs: number;
    batching: boolean;
    writeMode: 'await' | 'background';
    maxEntries: number;
    serializer: 'msgpack' | 'json';
  },
  commands: Command[],
): Promise<void> {
  const clock = new ManualClock(1_800_000_000_000);
  const model = new Model(clock, config.graceMs);
  const prefix = `${base}r${run}:`;
  const common: CacheOptions = {
    prefix,
    clock,
    ttlMs: 60_000,
    graceMs: config.graceMs,
    earlyRefreshBeta: 0,
    batching: config.batching,
    writeMode: config.writeMode,
    serializer: config.serializer,
    l1: { maxEntries: config.maxEntries },
    graceBackoffMs: GRACE_BACKOFF_MS,
    operationTimeoutMs: generousDeadlineMs,
  };
  const caches = [new Cache({ ...common, redis: clientA }), new Cache({ ...common, redis: clientB })];
  // Reads L2 for the race checks without filling the instances' L1s: a cache of its own, made
  // for each check (its L1 starts empty and it hears no bus), that sends nothing.
  const observer = () => new Cache({ ...common, redis: clientA, bus: false });
  try {
    await Promise.all(caches.map((cache) => cache.ready()));
    const views = caches.map((cache) => {
      const a = cache.namespace('a');
      return { '': cache, a, 'a/b': a.namespace('b') } as Record<Path, Cache>;
    });
    const trail: string[] = [];
    for (let step = 0; step < commands.length; step += 1) {
      const command = commands[step]!;
      trail.push(describeCommand(command));
      const where = () => `after step ${step}: ${trail.slice(-6).join(' → ')}`;
      if (command.op === 'advance') {
        clock.advance(command.ms);
      } else if (command.op === 'race') {
        await runRace(command, views, caches, observer, model, step, where);
      } else {
        await apply(command, views[command.on]![command.path], model, where);
        const other = 1 - command.on;
        await settleBus(caches[command.on]!, caches[other]!, `__barrier:${step}`);
      }
      // No L1 copy on either instance may differ from the model's fresh value.
      for (let instance = 0; instance < 2; instance += 1) {
        for (const p of PATHS) {
          for (const k of KEYS) {
            const local = views[instance]![p].getLocal(k);
            if (local === undefined) continue;
            expectOneOf(
              { instance, path: p, key: k, local },
              model.allowed(instance, p, k).map((allowed) => ({ instance, path: p, key: k, local: allowed })),
              `L1 copy differs from the model ${where()}`,
            );
          }
        }
      }
    }
    // A last full read on both instances, L1 and L2 alike.
    for (let instance = 0; instance < 2; instance += 1) {
      for (const p of PATHS) {
        const read = await views[instance]![p].getMany([...KEYS]);
        KEYS.forEach((k, index) => {
          expectOneOf(read[index], model.allowed(instance, p, k), `final getMany on ${instance} ${p} ${k}`);
        });
      }
    }
  } finally {
    await Promise.all(caches.map((cache) => cache.close()));
  }
}

/** Unique values for a race's writes, so that the state after it tells which write came last. */
function distinctValues(command: RaceCommand, tag: string): RaceCommand {
  switch (command.op) {
    case 'set':
    case 'getOrSet':
      return { ...command, value: `${tag}:${command.key}` };
    case 'setMany':
      return { ...command, items: command.items.map((item) => ({ ...item, value: `${tag}:${item.key}` })) };
    default:
      return command;
  }
}

/** The keys a race may have touched or read, by path. */
const ALL_KEYS = PATHS.flatMap((p) => KEYS.map((k) => ({ p, k, name: fullKey(p, k) })));

/**
 * Runs two commands at once. Nothing promises that two calls are atomic with each other, but
 * each key must end as if they ran one after the other (either order; a `getOrSet` whose run a
 * change of its key superseded caches nothing), both instances must agree on it once the bus
 * has settled both ways, and each read must answer with the key's value before or after the
 * other command.
 */
async function runRace(
  command: Extract<Command, { op: 'race' }>,
  views: Record<Path, Cache>[],
  caches: Cache[],
  observer: () => Cache,
  model: Model,
  step: number,
  where: () => string,
): Promise<void> {
  const first = distinctValues(command.first, `r${step}a`);
  const second = distinctValues(command.second, `r${step}b`);
  const label = `race ${where()}`;
  // Back-off copies make reads instance-dependent in ways `effect` does not follow: run in turn.
  if (model.backoffs.some((copies) => copies.size > 0)) {
    for (const item of [first, second]) {
      await apply(item, views[item.on]![item.path], model, where);
      await settleBus(
        caches[item.on]!,
        caches[1 - item.on]!,
        `__barrier:${step * 1_000 + (item === first ? 1 : 2)}`,
      );
    }
    return;
  }
  const call = async (item: RaceCommand) => {
    const view = views[item.on]![item.path];
    let runs = 0;
    switch (item.op) {
      case 'set':
        return { result: await view.set(item.key, item.value, item.opts), runs };
      case 'setMany':
        return {
          result: await view.setMany(
            item.items.map((entry) => ({ key: entry.key, value: entry.value, ...entry.opts })),
          ),
          runs,
        };
      case 'get':
        return { result: [await view.get(item.key)], runs };
      case 'has':
        return { result: await view.has(item.key), runs };
      case 'getMany':
        return { result: await view.getMany(item.keys), runs };
      case 'getOrSet': {
        const result = await view.getOrSet(
          item.key,
          async () => {
            runs += 1;
            return item.value;
          },
          item.opts,
        );
        return { result, runs };
      }
      case 'delete':
        return { result: await view.delete(item.key), runs };
      case 'deleteMany':
        return { result: await view.deleteMany(item.keys), runs };
      case 'deleteByTag':
        return { result: await view.deleteByTag(item.tag), runs };
      case 'expire':
        return { result: await view.expire(item.key), runs };
      case 'clear':
        return { result: await view.clear(), runs };
    }
  };
  const startSecond = async () => {
    for (let turn = 0; turn < command.gap; turn += 1) await new Promise((resolve) => setImmediate(resolve));
    return call(second);
  };
  const [outFirst, outSecond] = await Promise.all([call(first), startSecond()]);
  await settleBus(caches[0]!, caches[1]!, `__barrier:${step * 1_000 + 1}`);
  await settleBus(caches[1]!, caches[0]!, `__barrier:${step * 1_000 + 2}`);

  // Reads: per key, the value before the other command or after it.
  const checkRead = (item: RaceCommand, other: RaceCommand, out: { result: unknown; runs: number }) => {
    const after = model.clone();
    after.effect(other);
    const allowed = (k: string) => [
      ...model.allowed(item.on, item.path, k),
      ...after.allowed(item.on, item.path, k),
    ];
    if (item.op === 'get') expectOneOf((out.result as unknown[])[0], allowed(item.key), `${label}: get`);
    if (item.op === 'has')
      expectOneOf(
        out.result,
        allowed(item.key).map((value) => value !== undefined),
        `${label}: has`,
      );
    if (item.op === 'getMany')
      item.keys.forEach((k, index) => {
        expectOneOf((out.result as unknown[])[index], allowed(k), `${label}: getMany ${k}`);
      });
    if (item.op === 'getOrSet') {
      expect(out.runs, `${label}: getOrSet runs`).toBeLessThanOrEqual(1);
      if (out.runs === 1) expect(out.result, `${label}: getOrSet computed`).toEqual(item.value);
      else
        expectOneOf(
          out.result,
          allowed(item.key).filter((value) => value !== undefined),
          `${label}: getOrSet`,
        );
    }
  };
  checkRead(first, second, outFirst);
  checkRead(second, first, outSecond);

  // Each key ends as one of the orders left it, on both instances alike.
  const orders: Model[] = [];
  for (const [a, b] of [
    [first, second],
    [second, first],
  ] as const) {
    for (const supersede of [false, true]) {
      if (supersede && a.op !== 'getOrSet') continue;
      const candidate = model.clone();
      candidate.effect(a, supersede);
      candidate.effect(b);
      orders.push(candidate);
    }
  }
  const reader = observer();
  await reader.ready();
  const observed = { '': reader, a: reader.namespace('a'), 'a/b': reader.namespace('a').namespace('b') };
  // What L2 holds (read all at once); the instances' L1 copies are checked against the chosen
  // order afterwards.
  const observations = await Promise.all(
    ALL_KEYS.map(async ({ p, k }) => ({ value: await observed[p].get(k), ttl: await observed[p].ttl(k) })),
  );
  for (const [index, { p, k, name }] of ALL_KEYS.entries()) {
    const seen: { value: unknown; ttl: KeyTtl | undefined }[] = [observations[index]!];
    const matching = orders.find((candidate) => {
      const expectedTtl = candidate.ttl(p, k);
      const actualTtl = seen[0]!.ttl;
      return (
        isDeepEqual(seen[0]!.value, candidate.fresh(p, k)) &&
        (expectedTtl === undefined
          ? actualTtl === undefined
          : actualTtl !== undefined &&
            actualTtl.ttlMs === expectedTtl.ttlMs &&
            actualTtl.inGrace === expectedTtl.inGrace &&
            actualTtl.untilGoneMs === expectedTtl.untilGoneMs)
      );
    });
    if (matching === undefined) {
      expect(
        seen[0],
        `${label}: ${name} ends as neither order of the two commands leaves it (${orders
          .map((candidate) => JSON.stringify({ value: candidate.fresh(p, k), ttl: candidate.ttl(p, k) }))
          .join(' or ')})`,
      ).toBe('one of the orders');
    }
    const entry = matching!.entries.get(name);
    if (entry === undefined) model.entries.delete(name);
    else model.entries.set(name, { ...entry });
  }
  await reader.close();
}

function isDeepEqual(a: unknown, b: unknown): boolean {
  try {
    expect(a).toEqual(b);
    return true;
  } catch {
    return false;
  }
}

/** `actual` is one of `allowed` (deep equality). */
function expectOneOf(actual: unknown, allowed: readonly unknown[], message: string): void {
  const matches = allowed.some((candidate) => {
    try {
      expect(actual).toEqual(candidate);
      return true;
    } catch {
      return false;
    }
  });
  if (!matches) expect(actual, message).toEqual(allowed[0]);
}

class SourceDown extends Error {}

async function apply(
  command: Exclude<Command, { op: 'advance' | 'race' }>,
  view: Cache,
  model: Model,
  where: () => string,
): Promise<void> {
  const { path: p, on: instance } = command;
  switch (command.op) {
    case 'set':
      await view.set(command.key, command.value, command.opts);
      model.write(p, command.key, command.value, command.opts);
      return;
    case 'setMany':
      await view.setMany(command.items.map((item) => ({ key: item.key, value: item.value, ...item.opts })));
      for (const item of command.items) model.write(p, item.key, item.value, item.opts);
      return;
    case 'get':
      expectOneOf(await view.get(command.key), model.allowed(instance, p, command.key), `get ${where()}`);
      return;
    case 'has':
      expectOneOf(
        await view.has(command.key),
        model.allowed(instance, p, command.key).map((allowed) => allowed !== undefined),
        `has ${where()}`,
      );
      return;
    case 'getMany': {
      const read = await view.getMany(command.keys);
      command.keys.forEach((k, index) => {
        expectOneOf(read[index], model.allowed(instance, p, k), `getMany ${k} ${where()}`);
      });
      return;
    }
    case 'ttl': {
      const ttl = await view.ttl(command.key);
      if (model.backoff(instance, p, command.key) !== undefined) return; // L1's back-off copy answers
      const expected = model.ttl(p, command.key);
      if (expected === undefined) expect(ttl, `ttl ${where()}`).toBeUndefined();
      else expect(ttl, `ttl ${where()}`).toMatchObject(expected);
      return;
    }
    case 'getOrSet': {
      let runs = 0;
      const fresh = model.isFresh(p, command.key);
      const copy = model.backoff(instance, p, command.key);
      const stale = model.inGrace(p, command.key);
      const outcome = await view
        .getOrSet(
          command.key,
          async () => {
            runs += 1;
            if (command.fail) throw new SourceDown('source down');
            return command.value;
          },
          command.opts,
        )
        .then(
          (got) => ({ got }),
          (error: unknown) => ({ error }),
        );
      const label = `getOrSet ${where()}`;
      if (fresh) {
        expect({ outcome, runs }, label).toEqual({ outcome: { got: model.fresh(p, command.key) }, runs: 0 });
        return;
      }
      if (copy !== undefined && runs === 0) {
        // Served from the back-off copy, as the failed run left it.
        expect(outcome, label).toEqual({ got: copy.value });
        return;
      }
      expect(runs, label).toBe(1);
      if (!command.fail) {
        expect(outcome, label).toEqual({ got: command.value });
        model.write(p, command.key, command.value, command.opts);
      } else if (stale !== undefined) {
        expect(outcome, label).toEqual({ got: stale.value });
        const entry = model.entries.get(fullKey(p, command.key))!;
        model.backoffs[instance]!.set(fullKey(p, command.key), {
          value: stale.value,
          expiresAt: Math.min(model.clock.now() + GRACE_BACKOFF_MS, entry.staleUntil),
        });
      } else {
        expect((outcome as { error?: unknown }).error, label).toMatchObject({
          code: 'NOA_CACHE_FACTORY_FAILED',
        });
      }
      return;
    }
    case 'getOrSetMany': {
      const asked: string[][] = [];
      const byKey = new Map(command.items.map((item) => [item.key, item.value]));
      const missing = command.items
        .filter((item) => !model.isFresh(p, item.key) && model.backoff(instance, p, item.key) === undefined)
        .map((item) => item.key);
      const expected = command.items.map((item) =>
        missing.includes(item.key) ? [item.value] : model.allowed(instance, p, item.key),
      );
      const got = await view.getOrSetMany(
        command.items.map((item) => item.key),
        async (keys) => {
          asked.push([...keys]);
          return new Map(keys.map((k) => [k, byKey.get(k)!]));
        },
        command.opts,
      );
      const label = `getOrSetMany ${where()}`;
      got.forEach((value, index) => {
        expectOneOf(value, expected[index]!, `${label} item ${index}`);
      });
      // A key with a back-off copy may be served from it or (copy evicted) computed.
      const computed = asked.flat();
      for (const k of missing) expect(computed, label).toContain(k);
      for (const k of computed) {
        expect(model.isFresh(p, k), `${label}: computed a fresh key ${k}`).toBe(false);
        model.write(p, k, byKey.get(k)!, command.opts);
      }
      expect(asked.length, label).toBeLessThanOrEqual(1);
      return;
    }
    case 'pull': {
      const allowed = model.allowed(instance, p, command.key);
      expectOneOf(await view.pull(command.key), allowed, `pull ${where()}`);
      model.remove(fullKey(p, command.key));
      return;
    }
    case 'delete': {
      const presence = model.presence(p, command.key);
      const found = await view.delete(command.key);
      if (presence !== 'either') expect(found, `delete ${where()}`).toBe(presence === 'yes');
      model.remove(fullKey(p, command.key));
      return;
    }
    case 'deleteMany': {
      const presences = command.keys.map((k) => model.presence(p, k));
      const found = await view.deleteMany(command.keys);
      if (presences.includes('yes')) expect(found, `deleteMany ${where()}`).toBe(true);
      else if (!presences.includes('either')) expect(found, `deleteMany ${where()}`).toBe(false);
      for (const k of command.keys) model.remove(fullKey(p, k));
      return;
    }
    case 'deleteByTag': {
      const tag = scopedTag(p, command.tag);
      const tagged = [...model.entries].filter(([, entry]) => entry.tags.includes(tag));
      const atLeast = tagged.filter(([, entry]) => model.clock.now() < entry.staleUntil).length;
      const removed = await view.deleteByTag(command.tag);
      expect(removed, `deleteByTag count ${where()}`).toBeGreaterThanOrEqual(atLeast);
      expect(removed, `deleteByTag count ${where()}`).toBeLessThanOrEqual(tagged.length);
      for (const [name] of tagged) model.remove(name);
      return;
    }
    case 'expireByTag': {
      const tag = scopedTag(p, command.tag);
      const now = model.clock.now();
      const fresh = [...model.entries].filter(
        ([, entry]) => entry.tags.includes(tag) && now < entry.expiresAt,
      );
      const marked = await view.expireByTag(command.tag);
      expect(marked, `expireByTag count ${where()}`).toBe(fresh.length);
      for (const [name] of [...model.entries].filter(([, entry]) => entry.tags.includes(tag))) {
        const [entryPath, k] = name.split('|') as [Path, string];
        model.expire(entryPath, k);
      }
      return;
    }
    case 'expire':
      await view.expire(command.key);
      model.expire(p, command.key);
      return;
    case 'clear': {
      await view.clear();
      for (const name of [...model.entries.keys()]) {
        const entryPath = name.slice(0, name.indexOf('|'));
        // A namespace's clear removes its own keys and its children's (`a` clears `a/b`).
        if (p === '' || entryPath === p || entryPath.startsWith(`${p}/`)) model.remove(name);
      }
      return;
    }
  }
}

describe.skipIf(!redisUp)('model: two instances on one Redis and bus', () => {
  it(
    'every read, delete, tag delete and L1 copy agrees with a map of key → value, tags, expiry',
    async () => {
      let run = 0;
      await fc.assert(
        fc.asyncProperty(
          settings,
          fc.array(anyCommand, { minLength: 1, maxLength: 40 }),
          async (config, commands) => {
            run += 1;
            await runCommands(run, config, commands);
          },
        ),
        { numRuns, seed, path: replayPath },
      );
    },
    // A hang guard, not a time bound: 25 runs take ~10 s alone, up to ~60 s beside two CPU hogs.
    Math.max(180_000, numRuns * 2_000),
  );
});
