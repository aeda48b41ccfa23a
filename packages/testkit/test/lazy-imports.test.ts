import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

// Importing @noa/testkit must stay cheap: client libraries load only when a helper needs them.
const heavy = [
  'pg',
  'mysql2',
  'mysql2/promise',
  'ioredis',
  'amqplib',
  'mongodb',
  'nats',
  'testcontainers',
  '@platformatic/kafka',
  '@aws-sdk/client-s3',
  '@aws-sdk/client-sqs',
  '@aws-sdk/client-cloudfront',
];
const srcDir = path.resolve(import.meta.dirname, '..', 'src');

describe('src imports client libraries lazily', () => {
  for (const file of readdirSync(srcDir).filter((name) => name.endsWith('.ts'))) {
    it(file, () => {
      const text = readFileSync(path.join(srcDir, file), 'utf8');
      for (const match of text.matchAll(/^import\s+(type\s+)?[^'"]*from\s+'([^']+)'/gm)) {
        const [, typeOnly, specifier] = match;
        if (!typeOnly) expect(heavy, `${file} statically imports ${specifier}`).not.toContain(specifier);
      }
    });
  }
});
