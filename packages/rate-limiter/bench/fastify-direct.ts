/**
 * The Fastify plugin's own CPU per request, without HTTP: the hooks it adds (the check's
 * `onRequest`, then `onResponse`) called directly with minimal request and reply objects, in
 * alternating rounds, CPU time per request (process.cpuUsage, steadier than wall-clock on shared
 * cores). The hooks are taken from a real Fastify instance as the plugin adds them:
 *
 *   node --conditions=@noa/source --import tsx bench/fastify-direct.ts
 *
 * `NOA_FASTIFY_IMPL=<path of a built fastify.js>` (with `NOA_FASTIFY_LIMITER=<its index.js>`)
 * measures a build instead of the sources (through tsx the sources carry esbuild's `keepNames`
 * helpers). `NOA_FASTIFY_BASELINE=<dir>`: another build's output directory (its `fastify.js` and
 * `index.js`), a "before" side in the same rounds, for A/B checks.
 * Not through `app.inject()`: here (Fastify 5.12, Node 24) it keeps about 10 kB per request for the
 * process's life, with no plugin too, so each round costs more than the last and a side's median
 * depends on its place in the rounds.
 */

import { median } from '@noa/testkit/bench';
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import { fastifyRateLimit as sourcePlugin } from '../src/fastify.js';
import { createRateLimiter as sourceLimiter } from '../src/index.js';

type Plugin = typeof sourcePlugin;
type Build = { fastifyRateLimit: Plugin; createRateLimiter: typeof sourceLimiter };
const load = async (file: string): Promise<unknown> => import(new URL(file, `file://${process.cwd()}/`).href);

const fromEnv = async (plugin: string | undefined, limiter: string | undefined): Promise<Build> => ({
  fastifyRateLimit: plugin ? ((await load(plugin)) as Build).fastifyRateLimit : sourcePlugin,
  createRateLimiter: limiter ? ((await load(limiter)) as Build).createRateLimiter : sourceLimiter,
});

const builds: Record<string, Build> = {
  ours: await fromEnv(process.env.NOA_FASTIFY_IMPL, process.env.NOA_FASTIFY_LIMITER),
};
const baseline = process.env.NOA_FASTIFY_BASELINE;
if (baseline !== undefined) builds.before = await fromEnv(`${baseline}/fastify.js`, `${baseline}/index.js`);

const limit = 1_000_000_000;
const options = (build: Build) => ({
  limiter: build.createRateLimiter({ limits: [{ limit, windowMs: 60_000 }] }),
  headers: { draft: 'draft-7' as const },
});

type Hook = (...args: unknown[]) => unknown;

/** The plugin's onRequest and onResponse hooks, as it adds them to a Fastify instance. */
async function hooksOf(build: Build): Promise<{ onRequest: Hook; onResponse: Hook }> {
  const app = Fastify();
  const added: Record<string, Hook> = {};
  const addHook = app.addHook.bind(app) as (name: string, fn: Hook) => FastifyInstance;
  (app as unknown as { addHook: (name: string, fn: Hook) => FastifyInstance }).addHook = (name, fn) => {
    added[name] = fn;
    return addHook(name, fn);
  };
  await app.register(build.fastifyRateLimit as FastifyPluginAsync, options(build));
  await app.ready();
  return { onRequest: added.onRequest!, onResponse: added.onResponse! };
}

const routeOptions = { config: {}, method: 'GET', url: '/' };
const request = () => ({ headers: {}, method: 'GET', ip: '127.0.0.1', routeOptions, ips: undefined });
function reply() {
  const headers: Record<string, unknown> = {};
  const self = {
    raw: { closed: false, writableFinished: false },
    sent: false,
    statusCode: 200,
    headers(values: Record<string, unknown>) {
      for (const name in values) headers[name.toLowerCase()] = values[name];
      return self;
    },
    getHeader: (name: string) => headers[name.toLowerCase()],
  };
  return self;
}

/** Runs a hook to its end: `done` called, or the promise it returned settled. */
const run = (hook: Hook, ...args: unknown[]): Promise<void> =>
  new Promise<void>((resolve, reject) => {
    const done = (error?: unknown) => (error === undefined ? resolve() : reject(error));
    const returned = hook(...args, done) as PromiseLike<unknown> | undefined;
    if (returned !== undefined && typeof returned.then === 'function') returned.then(() => resolve(), reject);
  });

type Run = (calls: number) => Promise<void>;
/** Makes a side's run for one round (outside the measured time). */
type Side = () => Promise<Run>;

function directSide(build: Build): Side {
  const hooks = hooksOf(build);
  return async () => {
    const { onRequest, onResponse } = await hooks;
    return async (calls) => {
      for (let index = 0; index < calls; index++) {
        const req = request();
        const res = reply();
        await run(onRequest, req, res);
        await run(onResponse, req, res);
      }
    };
  };
}

const sides: Record<string, Side> = {};
for (const [name, build] of Object.entries(builds)) sides[name] = directSide(build);

/** CPU nanoseconds per request over `calls` requests. */
async function cpuPerCall(side: Side, calls: number): Promise<number> {
  const runRound = await side();
  (globalThis as { gc?: () => void }).gc?.();
  const before = process.cpuUsage();
  await runRound(calls);
  const used = process.cpuUsage(before);
  return ((used.user + used.system) * 1_000) / calls;
}

const rounds = Number(process.env.NOA_FASTIFY_ROUNDS ?? 9);
const calls = 100_000;
const samples: Record<string, number[]> = Object.fromEntries(Object.keys(sides).map((name) => [name, []]));
for (let round = 0; round < rounds; round++)
  for (const [name, side] of Object.entries(sides)) samples[name]!.push(await cpuPerCall(side, calls));
for (const [name, values] of Object.entries(samples))
  console.log(
    `${name}: ${median(values).toFixed(0)} ns CPU per request (rounds ${values.map((v) => v.toFixed(0)).join(', ')})`,
  );
if (samples.before !== undefined)
  console.log(`before / ours: ${(median(samples.before) / median(samples.ours!)).toFixed(2)}`);
