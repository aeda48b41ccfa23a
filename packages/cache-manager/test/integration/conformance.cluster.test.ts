import { generousDeadlineMs, uniqueName } from '@noa/testkit';
import { describeCacheConformance } from '../conformance/cache-conformance.js';
import { usePrivateCluster } from './redis-server.js';

const { installed: hasRedisServer, client: cluster } = usePrivateCluster('a private Redis Cluster');

describeCacheConformance(
  'memory + Redis Cluster (3 masters)',
  true,
  () => {
    const prefix = `${uniqueName('cm_cluster')}:`;
    return { options: () => ({ redis: cluster(), prefix, operationTimeoutMs: generousDeadlineMs }) };
  },
  !hasRedisServer,
);

describeCacheConformance(
  'L2 only (l1: false) + Redis Cluster (3 masters)',
  true,
  () => {
    const prefix = `${uniqueName('cm_cluster_l2only')}:`;
    return {
      options: () => ({ redis: cluster(), prefix, operationTimeoutMs: generousDeadlineMs, l1: false }),
    };
  },
  !hasRedisServer,
  true,
);
