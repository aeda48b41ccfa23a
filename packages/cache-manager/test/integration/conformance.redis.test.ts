import { isReachable, serviceUrl, uniqueName } from '@noa/testkit';
import { Redis } from 'ioredis';
import { describeCacheConformance } from '../conformance/cache-conformance.js';

const url = serviceUrl('redis');
const reachable = await isReachable('redis');
if (!reachable) console.log(`skipped: no Redis at ${url}`);

describeCacheConformance(
  'memory + Redis',
  () => {
    const redis = new Redis(url, { lazyConnect: false });
    const prefix = `${uniqueName('cm_conf')}:`;
    return {
      shared: true,
      options: () => ({ redis, prefix }),
      cleanup: async () => {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
          cursor = next;
          if (keys.length > 0) await redis.unlink(...keys);
        } while (cursor !== '0');
        redis.disconnect();
      },
    };
  },
  !reachable,
);

describeCacheConformance(
  'memory + Redis (json, gzip, adaptive L1, no batching)',
  () => {
    const redis = new Redis(url);
    const prefix = `${uniqueName('cm_conf_json')}:`;
    return {
      shared: true,
      options: () => ({
        redis,
        prefix,
        serializer: 'json',
        compression: { algorithm: 'gzip', thresholdBytes: 16 },
        l1: { policy: 'adaptive' },
        batching: false,
      }),
      cleanup: async () => {
        const keys = await redis.keys(`${prefix}*`);
        if (keys.length > 0) await redis.unlink(...keys);
        redis.disconnect();
      },
    };
  },
  !reachable,
);
