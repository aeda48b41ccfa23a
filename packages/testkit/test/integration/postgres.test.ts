import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withPostgresSchema } from '../../src/index.js';
import { requireService, smokeLine } from './smoke.js';

describe('PostgreSQL smoke', () => {
  let url: string;
  let client: pg.Client;
  beforeAll(async () => {
    url = await requireService('postgres', 'PostgreSQL');
    client = new pg.Client({ connectionString: url });
    await client.connect();
  });
  afterAll(() => client?.end());

  it('is version 15 with pg_stat_statements and hypopg usable', async () => {
    const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
    const version = rows[0]!.server_version;
    expect(version).toMatch(/^15\./);
    const available = await client.query<{ name: string }>(
      `SELECT name FROM pg_available_extensions WHERE name IN ('pg_stat_statements', 'hypopg') ORDER BY name`,
    );
    expect(available.rows.map((row) => row.name)).toEqual(['hypopg', 'pg_stat_statements']);
    // Creating extensions is transactional: prove both work, then leave the shared DB as it was.
    await client.query('BEGIN');
    try {
      await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
      await client.query('CREATE EXTENSION IF NOT EXISTS hypopg');
      const statements = await client.query<{ calls: string }>(
        'SELECT calls FROM pg_stat_statements LIMIT 1',
      );
      expect(statements.rows.length).toBeLessThanOrEqual(1);
      await client.query('CREATE TEMP TABLE smoke_hypo (id int, body text)');
      const hypo = await client.query<{ indexname: string }>(
        `SELECT indexname FROM hypopg_create_index('CREATE INDEX ON smoke_hypo (id)')`,
      );
      expect(hypo.rows[0]!.indexname).toContain('smoke_hypo');
    } finally {
      await client.query('ROLLBACK');
    }
    smokeLine('postgres', version, url);
  });

  it('gives a test its own schema through withPostgresSchema', async () => {
    const schema = await withPostgresSchema(url);
    const scoped = new pg.Client({ connectionString: schema.url });
    await scoped.connect();
    try {
      await scoped.query('CREATE TABLE items (id int PRIMARY KEY, name text)');
      await scoped.query(`INSERT INTO items VALUES (1, 'one')`);
      const { rows } = await client.query(`SELECT name FROM "${schema.schema}".items`);
      expect(rows).toEqual([{ name: 'one' }]);
    } finally {
      await scoped.end();
      await schema.drop();
    }
    const left = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema.schema]);
    expect(left.rowCount).toBe(0);
  });
});
