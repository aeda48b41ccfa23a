import { describe, expect, it } from 'vitest';
import { createNamespace } from '../../src/index.js';
import { requireService, smokeLine } from './smoke.js';

const b64 = (text: string) => Buffer.from(text).toString('base64');

/**
 * etcd through its v3 JSON gateway (plain fetch): no gRPC stack to install, and the same
 * calls work on etcd 3.4 and 3.5. The `etcd3` npm client would pull in @grpc/grpc-js and
 * protobuf loading for four HTTP calls.
 */
async function gateway<T>(url: string, path: string, body: unknown): Promise<T> {
  const response = await fetch(new URL(path, url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok) throw new Error(`etcd ${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

describe('etcd smoke', () => {
  it('puts, gets and deletes a key under a prefix of its own', async () => {
    const url = await requireService('etcd', 'etcd');
    const versionResponse = await fetch(new URL('/version', url));
    const { etcdserver: version } = (await versionResponse.json()) as { etcdserver: string };
    expect(version).toMatch(/^3\./);
    const { keyPrefix } = createNamespace('etcd_smoke');
    const key = `${keyPrefix}service/a`;
    await gateway(url, '/v3/kv/put', { key: b64(key), value: b64('10.0.0.1:80') });
    const range = await gateway<{ kvs?: { key: string; value: string }[] }>(url, '/v3/kv/range', {
      key: b64(key),
    });
    expect(range.kvs?.map((kv) => Buffer.from(kv.value, 'base64').toString())).toEqual(['10.0.0.1:80']);
    // Delete the whole prefix: range_end is the prefix with its last byte incremented.
    const end = Buffer.from(keyPrefix);
    end[end.length - 1]! += 1;
    const deleted = await gateway<{ deleted?: string }>(url, '/v3/kv/deleterange', {
      key: b64(keyPrefix),
      range_end: end.toString('base64'),
    });
    expect(deleted.deleted).toBe('1');
    smokeLine('etcd', version, url);
  });
});
