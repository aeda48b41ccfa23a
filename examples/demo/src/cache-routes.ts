import type { Cache } from '@noa/cache-manager';
import type { Express } from 'express';
import type { Product, ProductSource } from './products.js';

/**
 * Read-through product endpoint with `X-Cache: HIT|MISS` (404 for an unknown id, which is not
 * cached), invalidation by tag, and the cache's own counters (`cache.stats()`: hits per tier,
 * misses, hit rate, sizes) on `/api/cache/stats`.
 */
export function mountCacheRoutes(app: Express, cache: Cache, products: ProductSource): void {
  app.get('/api/products/:id', async (req, res, next) => {
    try {
      let computed = false;
      // A factory result of undefined (no such product) is returned but not cached.
      const product = await cache.getOrSet<Product | undefined>(
        `product:${req.params.id}`,
        async () => {
          computed = true;
          return products.load(req.params.id);
        },
        { tags: [`product:${req.params.id}`] },
      );
      res.set('X-Cache', computed ? 'MISS' : 'HIT');
      if (product === undefined) res.status(404).json({ error: `no product ${req.params.id}` });
      else res.json(product);
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
