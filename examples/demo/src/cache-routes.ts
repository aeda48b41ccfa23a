import type { Cache } from '@noa/cache-manager';
import type { Express } from 'express';

/** A product as the pretend database returns it. */
export interface Product {
  id: string;
  name: string;
  price: number;
  loadedAt: string;
}

async function loadProduct(id: string): Promise<Product> {
  await new Promise((resolve) => setTimeout(resolve, 150)); // a slow database
  return { id, name: `Product ${id}`, price: 9.5, loadedAt: new Date().toISOString() };
}

/**
 * Read-through product endpoint with `X-Cache: HIT|MISS`, invalidation by tag, and the cache's
 * own counters (`cache.stats()`: hits per tier, misses, hit rate, sizes) on `/api/cache/stats`.
 */
export function mountCacheRoutes(app: Express, cache: Cache): void {
  app.get('/api/products/:id', async (req, res, next) => {
    try {
      let computed = false;
      const product = await cache.getOrSet(
        `product:${req.params.id}`,
        async () => {
          computed = true;
          return loadProduct(req.params.id);
        },
        { tags: [`product:${req.params.id}`] },
      );
      res.set('X-Cache', computed ? 'MISS' : 'HIT').json(product);
    } catch (error) {
      next(error);
    }
  });
  app.post('/api/products/:id/invalidate', async (req, res, next) => {
    try {
      res.json({ removed: await cache.deleteByTag(`product:${req.params.id}`) });
    } catch (error) {
      next(error);
    }
  });
  app.get('/api/cache/stats', (_req, res) => {
    res.json(cache.stats());
  });
}
