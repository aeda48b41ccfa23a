import type { PgPool } from '@noa/connection-pool/pg';

/** A product as the database returns it. */
export interface Product {
  id: string;
  name: string;
  price: number;
  loadedAt: string;
}

/** Where the product endpoint loads products from on a cache miss. */
export interface ProductSource {
  /** The product, or undefined when there is none with this id. */
  load(id: string): Promise<Product | undefined>;
}

/** The memory mode's stand-in: every id exists, and each load takes 150 ms like a slow database. */
export class PretendProducts implements ProductSource {
  async load(id: string): Promise<Product> {
    await new Promise((resolve) => setTimeout(resolve, 150));
    return { id, name: `Product ${id}`, price: 9.5, loadedAt: new Date().toISOString() };
  }
}

/** How many products `PostgresProducts.createTable` seeds (ids `1` to `100`). */
export const seededProducts = 100;

/** Products in the Postgres table `<schema>.products`, read through the connection pool. */
export class PostgresProducts implements ProductSource {
  /** The quoted `"<schema>".products`; the schema name is checked to be an identifier. */
  readonly table: string;
  readonly #db: PgPool;
  readonly #schema: string;

  constructor(db: PgPool, schema: string) {
    if (!/^[a-z][a-z0-9_]*$/.test(schema)) throw new Error(`not a schema name: ${JSON.stringify(schema)}`);
    this.#db = db;
    this.#schema = schema;
    this.table = `"${schema}".products`;
  }

  /**
   * Creates the schema and table and seeds them if missing. Instances starting together take
   * an advisory lock first: two concurrent `CREATE TABLE IF NOT EXISTS` can still collide in
   * Postgres's catalog.
   */
  async createTable(): Promise<void> {
    await this.#db.withTransaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [this.table]);
      await tx.query(`CREATE SCHEMA IF NOT EXISTS "${this.#schema}"`);
      await tx.query(
        `CREATE TABLE IF NOT EXISTS ${this.table} (
          id text PRIMARY KEY,
          name text NOT NULL,
          price numeric(10, 2) NOT NULL
        )`,
      );
      await tx.query(
        `INSERT INTO ${this.table} (id, name, price)
         SELECT n::text, 'Product ' || n, 9.5 + n FROM generate_series(1, $1::int) AS n
         ON CONFLICT (id) DO NOTHING`,
        [seededProducts],
      );
    });
  }

  async load(id: string): Promise<Product | undefined> {
    // A read: with replicas configured, the pool sends it to one of them.
    const { rows } = await this.#db.query<{ id: string; name: string; price: number }>(
      `SELECT id, name, price::float8 AS price FROM ${this.table} WHERE id = $1`,
      [id],
    );
    const row = rows[0];
    return row && { ...row, loadedAt: new Date().toISOString() };
  }
}
