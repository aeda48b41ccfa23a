import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type BenchCase, size } from '@noa/testkit/bench';
import autocannon from 'autocannon';
import express, { type RequestHandler } from 'express';
import { rateLimit } from 'express-rate-limit';
import { expressRateLimit } from '../src/express.js';
import { createRateLimiter } from '../src/index.js';

async function serve(middleware: RequestHandler): Promise<{ url: string; server: Server }> {
  const app = express();
  app.use(middleware);
  app.get('/', (_req, res) => {
    res.send('ok');
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server };
}

async function requestsPerSecond(url: string): Promise<number> {
  const result = await autocannon({ url, connections: 32, duration: size(4, 1) });
  return result.requests.average;
}

/** Express middleware throughput, same memory limit: ours vs express-rate-limit. */
export async function httpCases(): Promise<{ cases: BenchCase[]; close: () => void }> {
  const limit = 1_000_000_000;
  // Both send the same headers: draft-7's `RateLimit` and `RateLimit-Policy`, in the form
  // express-rate-limit sends them. (Its draft-8 adds a `pk` partition key, a SHA-256 of the key
  // on every request, which our default draft-10 does not send: that was work for their side only.)
  const ours = await serve(
    expressRateLimit({
      limiter: createRateLimiter({ limits: [{ limit, windowMs: 60_000 }] }),
      headers: { draft: 'draft-7' },
    }) as RequestHandler,
  );
  const theirs = await serve(
    rateLimit({ windowMs: 60_000, limit, standardHeaders: 'draft-7', legacyHeaders: false }),
  );
  return {
    cases: [
      {
        case: 'express middleware, memory store, one client IP',
        unit: 'req/s',
        better: 'higher',
        goal: 1,
        anchor: 'express-rate-limit@8.7.4',
        rounds: 3,
        ours: () => requestsPerSecond(ours.url),
        theirs: () => requestsPerSecond(theirs.url),
      },
    ],
    close: () => {
      ours.server.close();
      theirs.server.close();
    },
  };
}
