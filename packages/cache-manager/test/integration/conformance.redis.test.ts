import { generousDeadlineMs, startPrivateRedis } from '@noa/testkit';
import { afterAll } from 'vitest';
import { describeCacheConformance } from '../conformance/cache-conformance.js';
import { dropPrefix, Redis, redisUp, redisUrl, testPrefix } from './helpers.js';

/**
 * A redis-server of this file's own when one can be started: its clears SCAN this file's keys
 * only. On the shared Redis each clear scanned every other file's keys too (200,000 of them with
 * other suites running), and the clear cases took most of the file's time. Without a
 * `redis-server` binary, the shared Redis as before.
 */
const privateServer = await startPrivateRedis().catch(() => undefined);
const url = privateServer?.url ?? redisUrl;
afterAll(async () => {
  await privateServer?.stop();
});

describeCacheConformance(
  'memory + Redis',
  true,
  () => {
    const redis = new Redis(url, { lazyConnect: false });
    const prefix = testPrefix('cm_conf');
    return {
      options: () => ({ redis, prefix, operationTimeoutMs: generousDeadlineMs }),
      cleanup: async () => {
        if (!privateServer) await dropPrefix(prefix);
        redis.disconnect();
      },
    };
  },
  !privateServer && !redisUp,
);

describeCacheConformance(
  'memory + Redis (json, gzip, adaptive L1, no batching)',
  true,
  () => {
    const redis = new Redis(url);
    const prefix = testPrefix('cm_conf_json');
    return {
      options: () => ({
        redis,
        prefix,
        operationTimeoutMs: generousDeadlineMs,
        serializer: 'json',
        compression: { algorithm: 'gzip', thresholdBytes: 16 },
        l1: { policy: 'adaptive' },
        batching: false,
      }),
      cleanup: async () => {
        if (!privateServer) await dropPrefix(prefix);
        redis.disconnect();
      },
    };
  },
  !privateServer && !redisUp,
);

describeCacheConformance(
  'L2 only (l1: false) + Redis',
  true,
  () => {
    const redis = new Redis(url);
    const prefix = testPrefix('cm_conf_l2only');
    return {
      options: () => ({ redis, prefix, operationTimeoutMs: generousDeadlineMs, l1: false }),
      cleanup: async () => {
        if (!privateServer) await dropPrefix(prefix);
        redis.disconnect();
      },
    };
  },
  !privateServer && !redisUp,
  true,
);
