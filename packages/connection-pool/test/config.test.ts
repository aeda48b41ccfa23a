import { ConfigError } from '@noa/core';
import { describe, expect, it } from 'vitest';
import {
  createDatabasePool,
  createMongoPool,
  createPgPool,
  createRedisPool,
  type DatabasePoolOptions,
  type PgPoolOptions,
} from '../src/index.js';

function fieldsOf(build: () => unknown): string[] {
  try {
    build();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).fields;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration errors name the field', () => {
  it('no primary', () => {
    expect(fieldsOf(() => createPgPool({} as PgPoolOptions))).toEqual(['primary']);
  });

  it('max < min', () => {
    expect(fieldsOf(() => createPgPool({ primary: 'postgres://x', pool: { min: 5, max: 2 } }))).toEqual([
      'pool.max',
    ]);
    expect(fieldsOf(() => createRedisPool({ redis: 'redis://x', min: 5, max: 2 }))).toEqual(['max']);
    expect(fieldsOf(() => createMongoPool({ url: 'mongodb://x', min: 5, max: 2 }))).toEqual(['max']);
  });

  it('unknown driver', () => {
    const options = { driver: 'oracle', primary: 'x' } as unknown as DatabasePoolOptions;
    expect(fieldsOf(() => createDatabasePool(options))).toEqual(['driver']);
  });

  it('unknown option and bad enum', () => {
    expect(fieldsOf(() => createPgPool({ primary: 'x', replicaz: [] } as unknown as PgPoolOptions))).toEqual([
      'replicaz',
    ]);
    expect(
      fieldsOf(() => createPgPool({ primary: 'x', loadBalancing: 'random' } as unknown as PgPoolOptions)),
    ).toEqual(['loadBalancing']);
  });

  it('a valid pool builds without connecting, and closes', async () => {
    const pool = createDatabasePool({ driver: 'pg', primary: 'postgres://127.0.0.1:1/none' });
    expect(pool.route('SELECT 1')).toEqual({ target: 'replica', reason: 'read' });
    expect(pool.health().primary.stats.size).toBe(0);
    await pool.close();
  });
});
