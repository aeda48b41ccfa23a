import { ConfigError } from '@noa/core';
import { describe, expect, it } from 'vitest';
import { createMysqlPool } from '../src/mysql.js';

// A callback-style call (mysql2's callback API, pg's) on a promise-only query() would never be
// called, its result lost: it is refused instead. PgPool takes callbacks as pg.Pool does
// (test/integration/pg-query-forms.test.ts).
describe('a callback where query() takes values or options', () => {
  it('is refused with a ConfigError naming callback before a connection is made (MysqlPool)', async () => {
    const db = createMysqlPool({ primary: 'mysql://noa:noa@127.0.0.1:1/noa', connectTimeoutMs: 200 });
    try {
      for (const call of [
        () => db.query('SELECT 1', (() => {}) as never),
        () => db.query('SELECT ?', [1], (() => {}) as never),
        () => db.execute('SELECT ?', (() => {}) as never),
      ]) {
        const error = await call().then(
          () => undefined,
          (failure: unknown) => failure,
        );
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).fields).toEqual(['callback']);
      }
      // No connect was tried: a refused one would have marked the primary down.
      expect(db.health().primary).toMatchObject({ healthy: true, stats: { size: 0 } });
    } finally {
      await db.close();
    }
  });
});
