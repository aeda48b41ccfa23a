import {
  CloudFrontClient,
  CreateDistributionCommand,
  CreateInvalidationCommand,
  GetInvalidationCommand,
} from '@aws-sdk/client-cloudfront';
import { describe, expect, it } from 'vitest';
import { uniqueName } from '../../src/index.js';
import { requireService, smokeLine } from './smoke.js';

describe('CloudFront (moto) smoke', () => {
  it('creates a distribution, then an invalidation on it', async () => {
    const endpoint = await requireService('cloudfront', 'CloudFront (moto)');
    const cloudfront = new CloudFrontClient({
      endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    const reference = uniqueName('cf');
    try {
      const created = await cloudfront.send(
        new CreateDistributionCommand({
          DistributionConfig: {
            CallerReference: reference,
            Comment: 'noa testkit smoke',
            Enabled: true,
            Origins: {
              Quantity: 1,
              Items: [
                {
                  Id: 'origin',
                  DomainName: 'origin.example.com',
                  CustomOriginConfig: { HTTPPort: 80, HTTPSPort: 443, OriginProtocolPolicy: 'http-only' },
                },
              ],
            },
            DefaultCacheBehavior: { TargetOriginId: 'origin', ViewerProtocolPolicy: 'allow-all' },
          },
        }),
      );
      const distributionId = created.Distribution?.Id;
      expect(distributionId).toMatch(/^[A-Z0-9]{6,}$/);
      expect(created.Distribution?.DistributionConfig?.CallerReference).toBe(reference);
      const invalidation = await cloudfront.send(
        new CreateInvalidationCommand({
          DistributionId: distributionId,
          InvalidationBatch: {
            CallerReference: `${reference}-inv`,
            Paths: { Quantity: 1, Items: ['/assets/*'] },
          },
        }),
      );
      const invalidationId = invalidation.Invalidation?.Id;
      expect(invalidationId).toMatch(/^[A-Z0-9]{6,}$/);
      expect(invalidation.Invalidation?.InvalidationBatch?.Paths?.Items).toEqual(['/assets/*']);
      // The invalidation is stored on that distribution: reading it back by id finds it.
      const fetched = await cloudfront.send(
        new GetInvalidationCommand({ DistributionId: distributionId, Id: invalidationId }),
      );
      expect(fetched.Invalidation?.Id).toBe(invalidationId);
      expect(fetched.Invalidation?.InvalidationBatch?.CallerReference).toBe(`${reference}-inv`);
      smokeLine('cloudfront', 'moto', endpoint);
    } finally {
      cloudfront.destroy();
    }
  });
});
