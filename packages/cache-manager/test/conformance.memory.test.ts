import { describeCacheConformance } from './conformance/cache-conformance.js';

describeCacheConformance('memory only (lru)', () => ({ options: () => ({}), shared: false }));
describeCacheConformance('memory only (adaptive)', () => ({
  options: () => ({ l1: { policy: 'adaptive' } }),
  shared: false,
}));
