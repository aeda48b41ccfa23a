// One side of the memory fixed-window comparison, for counting instructions under valgrind
// (see count.sh, misses.sh and docs/decisions/009): `node loop.mjs <side> <calls>` runs <calls> awaited
// calls over 10k keys through a loop compiled for it alone, as `ownCpuLoop()` does in the bench.
// Sides: ours (the built package: run `pnpm build` first), express-rate-limit,
// rate-limiter-flexible, reference (a copy of the stripped-down fixed window of
// bench/memory-cases.ts: this file runs the built package under plain Node, and importing the
// TypeScript bench would need tsx, under which our side counts differently: decision 009).
// Windows last a day: under valgrind a run takes minutes, and a window ending inside one would
// send every key through a new window's path once. Our store's clock runs 50x slower than real
// time, as valgrind slows the process about that much: the once-a-second moves of each key in
// the eviction order (a real-time rule) would otherwise run 50x as often per check as outside it.
import { coarseClock } from '@noa/core';
import { MemoryStore as ExpressRateLimitMemoryStore } from 'express-rate-limit';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { createRateLimiter, MemoryStore } from '../../dist/index.js';

const [side, callsArg] = process.argv.slice(2);
const calls = Number(callsArg);
const keyCount = 10_000;
const keys = Array.from({ length: keyCount }, (_, index) => `user-${index}`);
const points = 1_000_000_000;
const windowMs = 86_400_000;

/** A coarse clock (one Date.now() per 16 reads) whose time runs 50x slower than real time. */
function slowedClock() {
  const started = Date.now();
  let left = 0;
  let reading = 0;
  return {
    now() {
      if (left > 0) {
        left -= 1;
        return reading;
      }
      left = 16;
      reading = started + Math.floor((Date.now() - started) / 50);
      return reading;
    },
  };
}

function reference() {
  const states = new Map();
  return (key) => {
    const now = coarseClock.now();
    let state = states.get(key);
    if (state === undefined) {
      state = { windowStart: Number.NaN, count: 0 };
      states.set(key, state);
    }
    const windowStart = now - (now % windowMs);
    const used = (state.windowStart === windowStart ? state.count : 0) + 1;
    state.windowStart = windowStart;
    state.count = used;
    const resetMs = windowStart + windowMs - now;
    const limit = {
      name: 'default',
      windowMs,
      allowed: true,
      limit: points,
      remaining: points - used,
      resetMs,
      retryAfterMs: 0,
      delayMs: 0,
    };
    return Promise.resolve({
      allowed: true,
      outcome: 'allowed',
      key,
      limits: [limit],
      remaining: points - used,
      resetMs,
      retryAfterMs: 0,
      delayMs: 0,
      source: 'store',
    });
  };
}

let call;
if (side === 'ours') {
  const limiter = createRateLimiter({
    limits: [{ algorithm: 'fixed-window', limit: points, windowMs }],
    store: new MemoryStore({ clock: slowedClock() }),
  });
  call = (index) => limiter.check(keys[index % keyCount]);
} else if (side === 'express-rate-limit') {
  const store = new ExpressRateLimitMemoryStore();
  store.init({ windowMs });
  store.interval?.unref();
  call = (index) => store.increment(keys[index % keyCount]);
} else if (side === 'rate-limiter-flexible') {
  const limiter = new RateLimiterMemory({ points, duration: windowMs / 1000 });
  call = (index) => limiter.consume(keys[index % keyCount]);
} else if (side === 'reference') {
  const check = reference();
  call = (index) => check(keys[index % keyCount]);
} else {
  throw new Error(`unknown side ${side}: ours, express-rate-limit, rate-limiter-flexible, reference`);
}

// The loop of @noa/testkit's ownCpuLoop(), compiled for this side alone.
const loop = new Function(
  `return async function ownCpuLoop(iterations, fn) {
    for (let index = 0; index < iterations; index += 1) {
      const result = fn(index);
      if (result instanceof Promise) await result;
    }
  };`,
)();
if (callsArg === 'bytes') {
  // `node loop.mjs <side> bytes`: bytes allocated per call, the young generation's growth over
  // batches of 1,000 calls that no scavenge interrupted (median of 50), after 300k calls of warm-up.
  const { getHeapSpaceStatistics } = await import('node:v8');
  const young = () =>
    getHeapSpaceStatistics().find((space) => space.space_name === 'new_space').space_used_size;
  await loop(300_000, call);
  const perCall = [];
  for (let batch = 0; batch < 50; batch += 1) {
    const before = young();
    await loop(1_000, call);
    const after = young();
    if (after > before) perCall.push((after - before) / 1_000);
  }
  perCall.sort((a, b) => a - b);
  console.log(`${side}: ${Math.round(perCall[perCall.length >> 1])} bytes allocated per call`);
} else {
  for (let done = 0; done < calls; done += 1_000_000) await loop(Math.min(1_000_000, calls - done), call);
}
