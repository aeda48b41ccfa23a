import type { AddressInfo } from 'node:net';
import { awayFromWindowEdge } from '@noa/testkit';
import express from 'express';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { expressRateLimit } from '../src/express.js';
import { createRateLimiter } from '../src/index.js';

// The memory store's fixed windows run on the real clock (Date.now), aligned to the minute: a
// test that expects a 429 from the window its first request opened starts none within 2 s of its end.
beforeEach(async () => {
  await awayFromWindowEdge(60_000, 2_000);
});

// An async refusal handler that rejects reaches Express's error handling (next(error)), not an
// unhandled rejection that would crash the process.
let base = '';
let close = () => {};
beforeAll(async () => {
  const app = express();
  const limiter = createRateLimiter({ limits: [{ limit: 1, windowMs: 60_000 }] });
  app.use(
    expressRateLimit({
      limiter,
      handler: async () => {
        await Promise.resolve();
        throw new Error('handler failed');
      },
    }),
  );
  app.get('/', (_req, res) => {
    res.send('ok');
  });
  app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(500).send(error.message);
  });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  close = () => server.close();
});
afterAll(() => close());

it('a rejecting async handler is passed to next(error)', async () => {
  expect((await fetch(base)).status).toBe(200);
  const refused = await fetch(base);
  expect([refused.status, await refused.text()]).toEqual([500, 'handler failed']);
});
