import { describeCacheConformance } from './conformance/cache-conformance.js';

describeCacheConformance('memory only (lru)', false, () => ({ options: () => ({}) }));
describeCacheConformance('memory only (adaptive)', false, () => ({
  options: () => ({ l1: { policy: 'adaptive' } }),
}));
