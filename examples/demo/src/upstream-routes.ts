import {
  AcquireError,
  createRateLimiter,
  type RateLimiter,
  type RateLimiterOptions,
} from '@noa/rate-limiter';
import type { Express } from 'express';
import type { Registry } from 'prom-client';

/** A pretend third-party API that allows 2 calls per second and records when it was called. */
export class PretendUpstream {
  readonly calls: number[] = [];

  async quote(symbol: string): Promise<{ symbol: string; price: number }> {
    this.calls.push(Date.now());
    await new Promise((resolve) => setTimeout(resolve, 5));
    return { symbol, price: 100 + symbol.length };
  }
}

/**
 * `GET /api/quotes/:symbol` calls the upstream under its quota (a token bucket of 2 per second,
 * burst 2) with `limiter.acquire()`: a request over the quota waits its turn (up to 3 s) instead
 * of failing, and the response says how long it waited. Returns the outbound limiter. Pass a
 * Redis `store` (and its fail mode) so that every instance draws from the same quota.
 */
export function mountUpstreamRoutes(
  app: Express,
  upstream: PretendUpstream,
  registry: Registry,
  storeOptions: Pick<RateLimiterOptions, 'store' | 'failMode' | 'expectedInstances' | 'deadlineMs'> = {},
): RateLimiter {
  const outbound = createRateLimiter({
    ...storeOptions,
    name: 'upstream',
    registry,
    limits: [{ name: 'upstream', algorithm: 'token-bucket', limit: 2, windowMs: 1_000, burst: 2 }],
  });
  app.get('/api/quotes/:symbol', async (req, res, next) => {
    const started = Date.now();
    try {
      await outbound.acquire('upstream', { timeoutMs: 3_000 });
      const quote = await upstream.quote(req.params.symbol);
      res.json({ ...quote, waitedMs: Date.now() - started });
    } catch (error) {
      if (error instanceof AcquireError) {
        res
          .status(503)
          .set('Retry-After', String(Math.ceil(error.retryAfterMs / 1_000)))
          .json({
            error: 'the upstream quota is used up for now',
            reason: error.reason,
          });
        return;
      }
      next(error);
    }
  });
  return outbound;
}
