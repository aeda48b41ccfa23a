import type { Client, QueryResult, QueryResultRow } from 'pg';
import { badOptions, connectOptionsCheck } from './call-options.js';
import type { ClusterOptions } from './cluster-options.js';
import { type PgConnectionConfig, pgDriver } from './drivers/pg-driver.js';
import { type QueryOptions, SqlCluster, type Transaction, type TransactionOptions } from './sql-cluster.js';

/** Options of {@link createPgPool}: servers are connection strings or `pg` ClientConfig objects. */
export type PgPoolOptions = ClusterOptions<PgConnectionConfig>;

/** The transaction handle of a {@link PgPool}: `query()` is typed by row like `pg`'s. */
export interface PgTransaction extends Omit<Transaction<Client, QueryResult<QueryResultRow>>, 'query'> {
  query<R extends QueryResultRow = QueryResultRow>(
    sql: string,
    values?: readonly unknown[],
  ): Promise<QueryResult<R>>;
}

/**
 * A Postgres primary/replica pool on `pg`. `query()` has the shape of `pg.Pool#query`, so
 * existing code keeps working while reads move to replicas.
 */
export class PgPool extends SqlCluster<Client, PgConnectionConfig, QueryResult<QueryResultRow>> {
  constructor(options: PgPoolOptions) {
    super(pgDriver, options);
  }

  /** Runs one statement on the right server (see `SqlCluster#query`). */
  override query<R extends QueryResultRow = QueryResultRow>(
    sql: string,
    values?: readonly unknown[],
    options?: QueryOptions,
  ): Promise<QueryResult<R>> {
    return super.query(sql, values, options) as Promise<QueryResult<R>>;
  }

  /**
   * Borrows a primary client with `release()`, like `pg.Pool#connect`, for code written
   * against `pg.Pool` (cursors, COPY, LISTEN). Pass `role: 'replica'` for read-only work.
   */
  async connect(options: { role?: 'primary' | 'replica'; signal?: AbortSignal } = {}): Promise<PgPoolClient> {
    const invalid = badOptions(connectOptionsCheck, options);
    if (invalid !== undefined) throw invalid;
    const { role = 'primary', signal } = options;
    const client = (await this.acquire(role, signal === undefined ? undefined : { signal })) as PgPoolClient;
    client.release = (error?: Error | boolean) => {
      this.release(client, error !== undefined && error !== false);
    };
    return client;
  }

  /** Runs `fn` in a retried transaction on the primary (see `SqlCluster#withTransaction`). */
  override withTransaction<T>(
    fn: (tx: PgTransaction) => Promise<T>,
    options?: TransactionOptions,
  ): Promise<T> {
    return super.withTransaction(
      fn as (tx: Transaction<Client, QueryResult<QueryResultRow>>) => Promise<T>,
      options,
    );
  }
}

/** A borrowed `pg` client with `release()`, as `pg.Pool#connect` returns. */
export type PgPoolClient = Client & {
  /** Gives the client back; pass an error (or `true`) to close it instead. */
  release(error?: Error | boolean): void;
};

/** Creates a {@link PgPool}; bad options throw a `ConfigError` naming the field. */
export function createPgPool(options: PgPoolOptions): PgPool {
  return new PgPool(options);
}
