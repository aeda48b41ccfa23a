import type { Connection, FieldPacket, QueryResult } from 'mysql2/promise';
import type { ClusterOptions } from './cluster-options.js';
import { type MysqlConnectionConfig, type MysqlResult, mysqlDriver } from './drivers/mysql-driver.js';
import { type QueryOptions, SqlCluster, type Transaction, type TransactionOptions } from './sql-cluster.js';

/** Options of {@link createMysqlPool}: servers are URLs or mysql2 ConnectionOptions. */
export type MysqlPoolOptions = ClusterOptions<MysqlConnectionConfig>;

/** The transaction handle of a {@link MysqlPool}: `query()` is typed like mysql2's. */
export interface MysqlTransaction extends Omit<Transaction<Connection, MysqlResult>, 'query'> {
  query<T extends QueryResult = QueryResult>(
    sql: string,
    values?: readonly unknown[],
  ): Promise<[T, FieldPacket[]]>;
}

/**
 * A MySQL/MariaDB primary/replica pool on `mysql2/promise`. `query()` resolves to
 * `[rows, fields]` like mysql2; parameterized statements are prepared and cached per connection.
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
