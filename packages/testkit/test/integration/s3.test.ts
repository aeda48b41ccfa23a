import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { uniqueName } from '../../src/index.js';
import { requireService, smokeLine } from './smoke.js';

describe('S3 (moto) smoke', () => {
  it('creates a bucket and puts and gets an object', async () => {
    const endpoint = await requireService('s3', 'S3 (moto)');
    const s3 = new S3Client({
      endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    // Bucket names allow no underscores.
    const bucket = uniqueName('bucket').replaceAll('_', '-');
    try {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      await s3.send(
        new PutObjectCommand({ Bucket: bucket, Key: 'a/b.txt', Body: 'hello s3', ContentType: 'text/plain' }),
      );
      const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'a/b.txt' }));
      expect(await object.Body?.transformToString()).toBe('hello s3');
      expect(object.ContentType).toBe('text/plain');
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'a/b.txt' }));
      await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
      smokeLine('s3', 'moto', endpoint);
    } finally {
      s3.destroy();
    }
  });
});
