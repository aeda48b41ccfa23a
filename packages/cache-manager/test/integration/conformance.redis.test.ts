import { describeCacheConformance } from '../conformance/cache-conformance.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

describeCacheConformance(
  'memory + Redis',
  true,
  () => {
    const redis = new Redis(redisUrl, { lazyConnect: false });
    const prefix = testPrefix('cm_conf');
    return {
      options: () => ({ redis, prefix }),
      cleanup: async () => {
        await dropPrefix(prefix);
        redis.disconnect();
      },
    };
  },
  !redisUp,
);

describeCacheConformance(
  'memory + Redis (json, gzip, adaptive L1, no batching)',
  true,
  () => {
    const redis = new Redis(redisUrl);
    const prefix = testPrefix('cm_conf_json');
    return {
      options: () => ({
        redis,
        prefix,
        serializer: 'json',
        compression: { algorithm: 'gzip', thresholdBytes: 16 },
        l1: { policy: 'adaptive' },
        batching: false,
      }),
      cleanup: async () => {
        await dropPrefix(prefix);
        redis.disconnect();
      },
    };
  },
  !redisUp,
);
