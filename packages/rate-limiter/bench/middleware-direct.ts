/**
 * The Express middleware's own CPU per request, without HTTP: ours and express-rate-limit called
 * directly with minimal request and response objects, in alternating rounds, CPU time per call
 * (process.cpuUsage, steadier than wall-clock on shared cores). The HTTP row of `pnpm bench`
 * includes Express and the HTTP stack, which dwarf both middlewares; this isolates them:
 *
 *   node --conditions=@noa/source --import tsx bench/middleware-direct.ts
 *
 * Through tsx the sources carry esbuild's `keepNames` helpers (a `__name` call for each named
 * closure created per call); `NOA_MW_IMPL=<path of a built express.js>` measures a build instead,
 * e.g. `dist/express.js` after `pnpm build` (then `NOA_MW_LIMITER=dist/index.js` too).
 * `NOA_MW_BASELINE=<dir>`: another build's output directory (its `express.js` and `index.js`), a
 * "before" side in the same rounds, for A/B checks.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { median } from '@noa/testkit/bench';
import { rateLimit } from 'express-rate-limit';
import { expressRateLimit as sourceMiddleware } from '../src/express.js';
import { createRateLimiter as sourceLimiter } from '../src/index.js';

type Middleware = (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void;
const expressRateLimit: typeof sourceMiddleware = process.env.NOA_MW_IMPL
  ? (
      (await import(new URL(process.env.NOA_MW_IMPL, `file://${process.cwd()}/`).href)) as {
        expressRateLimit: typeof sourceMiddleware;
      }
    ).expressRateLimit
  : sourceMiddleware;
const createRateLimiter: typeof sourceLimiter = process.env.NOA_MW_LIMITER
  ? (
      (await import(new URL(process.env.NOA_MW_LIMITER, `file://${process.cwd()}/`).href)) as {
        createRateLimiter: typeof sourceLimiter;
      }
    ).createRateLimiter
  : sourceLimiter;

const baseline = process.env.NOA_MW_BASELINE;
const limit = 1_000_000_000;
const sides: Record<string, Middleware> = {
  ours: expressRateLimit({
    limiter: createRateLimiter({ limits: [{ limit, windowMs: 60_000 }] }),
    headers: { draft: 'draft-7' },
  }),
  'express-rate-limit': rateLimit({
    windowMs: 60_000,
    limit,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    validate: false,
  }) as unknown as Middleware,
};
if (baseline !== undefined) {
  const at = (file: string) => new URL(`${baseline}/${file}`, `file://${process.cwd()}/`).href;
  const before = (await import(at('express.js'))) as { expressRateLimit: typeof sourceMiddleware };
  const beforeLimiter = (await import(at('index.js'))) as { createRateLimiter: typeof sourceLimiter };
  sides.before = before.expressRateLimit({
    limiter: beforeLimiter.createRateLimiter({ limits: [{ limit, windowMs: 60_000 }] }),
    headers: { draft: 'draft-7' },
  });
}
const app = { get: () => false };
const request = () =>
  ({ headers: {}, method: 'GET', ip: '127.0.0.1', socket: {}, app, url: '/' }) as unknown as IncomingMessage;
function response(): ServerResponse {
  const headers: Record<string, unknown> = {};
  return {
    headersSent: false,
    statusCode: 200,
    setHeader: (name: string, value: unknown) => {
      headers[name.toLowerCase()] = value;
    },
    getHeader: (name: string) => headers[name.toLowerCase()],
    once: () => undefined,
    on: () => undefined,
  } as unknown as ServerResponse;
}

/** CPU nanoseconds per call over `calls` requests, each awaited until `next()`. */
async function cpuPerCall(middleware: Middleware, calls: number): Promise<number> {
  const before = process.cpuUsage();
  for (let index = 0; index < calls; index++)
    await new Promise<void>((resolve, reject) =>
      middleware(request(), response(), (error) => (error === undefined ? resolve() : reject(error))),
    );
  const used = process.cpuUsage(before);
  return ((used.user + used.system) * 1_000) / calls;
}

const rounds = Number(process.env.NOA_MW_ROUNDS ?? 9);
const samples: Record<string, number[]> = Object.fromEntries(Object.keys(sides).map((name) => [name, []]));
for (let round = 0; round < rounds; round++)
  for (const [name, middleware] of Object.entries(sides))
    samples[name]!.push(await cpuPerCall(middleware, 100_000));
for (const [name, values] of Object.entries(samples))
  console.log(
    `${name}: ${median(values).toFixed(0)} ns CPU per request (rounds ${values.map((v) => v.toFixed(0)).join(', ')})`,
  );
console.log(
  `express-rate-limit / ours: ${(median(samples['express-rate-limit']!) / median(samples.ours!)).toFixed(2)} (above 1: ours uses less CPU)`,
);
if (samples.before !== undefined)
  console.log(`before / ours: ${(median(samples.before) / median(samples.ours!)).toFixed(2)}`);
