import type { Connection, FieldPacket, QueryResult } from 'mysql2/promise';
import type { ClusterOptions } from './cluster-options.js';
import { type MysqlConnectionConfig, type MysqlResult, mysqlDriver } from './drivers/mysql-driver.js';
import { type QueryOptions, SqlCluster, type Transaction, type TransactionOptions } from './sql-cluster.js';

/** Options of {@link createMysqlPool}: servers are URLs or mysql2 ConnectionOptions. */
export type MysqlPoolOptions = ClusterOptions<MysqlConnectionConfig>;

/** The transaction handle of a {@link MysqlPool}: `query()` and `execute()` are typed like mysql2's. */
export interface MysqlTransaction extends Omit<Transaction<Connection, MysqlResult>, 'query'> {
  /** mysql2's `query()` on the transaction's connection: values formatted client-side. */
  query<T extends QueryResult = QueryResult>(
    sql: string,
    values?: readonly unknown[],
  ): Promise<[T, FieldPacket[]]>;
  /** mysql2's `execute()` on the transaction's connection: a prepared statement from its cache. */
  execute<T extends QueryResult = QueryResult>(
    sql: string,
    values?: readonly unknown[],
  ): Promise<[T, FieldPacket[]]>;
}

const prepared = { execute: true } as const;

/**
 * A MySQL/MariaDB primary/replica pool on `mysql2/promise`. `query()` and `execute()` are
 * mysql2's and resolve to `[rows, fields]`: `query()` formats values client-side (`IN (?)` with
 * a list, `SET ?` with an object), `execute()` runs prepared statements cached per connection.
 */
export class MysqlPool extends SqlCluster<Connection, MysqlConnectionConfig, MysqlResult> {
  constructor(options: MysqlPoolOptions) {
    super(mysqlDriver, options);
  }

  /** Runs one statement on the right server (see `SqlCluster#query`). */
  override query<T extends QueryResult = QueryResult>(
    sql: string,
    values?: readonly unknown[],
    options?: QueryOptions,
  ): Promise<[T, FieldPacket[]]> {
    return super.query(sql, values, options) as Promise<[T, FieldPacket[]]>;
  }

  /**
   * Runs one prepared statement on the right server, routed like `query()`: mysql2's
   * `execute()`, from a per-connection cache of `statementCacheSize` statements. Values are
   * bound by the server, so they are scalars (no lists for `IN (?)`, no objects for `SET ?`).
   */
  execute<T extends QueryResult = QueryResult>(
    sql: string,
    values?: readonly unknown[],
    options?: QueryOptions,
  ): Promise<[T, FieldPacket[]]> {
    return this.routeStatement(sql, values, options, prepared) as Promise<[T, FieldPacket[]]>;
  }

  protected override transactionHandle(conn: Connection, attempt: number): MysqlTransaction {
    const handle = super.transactionHandle(conn, attempt) as MysqlTransaction;
    handle.execute = <T extends QueryResult>(sql: string, values?: readonly unknown[]) =>
      this.runInTransaction(conn, sql, values, prepared) as Promise<[T, FieldPacket[]]>;
    return handle;
  }

  /** Runs `fn` in a retried transaction on the primary (deadlocks 1213 and lock waits 1205 retry by default). */
  override withTransaction<T>(
    fn: (tx: MysqlTransaction) => Promise<T>,
    options?: TransactionOptions,
  ): Promise<T> {
    return super.withTransaction(fn as (tx: Transaction<Connection, MysqlResult>) => Promise<T>, options);
  }
}

/** Creates a {@link MysqlPool}; bad options throw a `ConfigError` naming the field. */
export function createMysqlPool(options: MysqlPoolOptions): MysqlPool {
  return new MysqlPool(options);
}
