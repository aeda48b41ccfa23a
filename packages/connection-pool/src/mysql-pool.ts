import { ConfigError } from '@noa/core';
import type {
  Connection,
  FieldPacket,
  QueryOptions as Mysql2QueryOptions,
  QueryResult,
} from 'mysql2/promise';
import { badOptions, getConnectionOptionsCheck } from './call-options.js';
import type { ClusterOptions } from './cluster-options.js';
import {
  type MysqlConnectionConfig,
  type MysqlResult,
  mysqlDriver,
  trackedStatementMethods,
} from './drivers/mysql-driver.js';
import {
  callbackRefused,
  type QueryOptions,
  SqlCluster,
  type Transaction,
  type TransactionOptions,
} from './sql-cluster.js';
import type { StatementSettings, StatementValues } from './sql-driver.js';

/** A connection lent by `MysqlPool#getConnection()`, as mysql2's pool lends one. */
export type MysqlPoolConnection = Connection & {
  /** Gives the connection back; pass an error (or `true`) to close it instead. A second call does nothing. */
  release(error?: Error | boolean): void;
  /** Closes the connection and frees its slot in the pool. */
  destroy(): void;
};

/** Options of {@link createMysqlPool}: servers are URLs or mysql2 ConnectionOptions. */
export type MysqlPoolOptions = ClusterOptions<MysqlConnectionConfig>;

/** The keys of mysql2's `QueryOptions` that `query()` and `execute()` take in their options-object form. */
const passedOptions = [
  'sql',
  'values',
  'namedPlaceholders',
  'nestTables',
  'typeCast',
  'rowsAsArray',
  'supportBigNumbers',
  'bigNumberStrings',
  'dateStrings',
  'timezone',
] as const;

/**
 * mysql2's options-object form of `query()` and `execute()` (`{ sql, values, rowsAsArray, … }`):
 * the subset of mysql2's `QueryOptions` passed through to it. Not `timeout` (on expiry mysql2
 * destroys the connection: use `queryTimeoutMs` or a signal), `attributes` nor `infileStreamFactory`.
 */
export type MysqlQueryOptions = Pick<Mysql2QueryOptions, (typeof passedOptions)[number]>;

/**
 * The values of a `MysqlPool` statement: a list for `?` placeholders (formatted client-side by
 * `query()`, so lists and objects inside expand), or an object for `:name` placeholders when
 * mysql2's `namedPlaceholders` is on (in the server's ConnectionOptions or the options object).
 */
export type MysqlValues = StatementValues;

/** The transaction handle of a {@link MysqlPool}: `query()` and `execute()` are typed like mysql2's. */
export interface MysqlTransaction extends Omit<Transaction<Connection, MysqlResult>, 'query'> {
  /** mysql2's `query()` on the transaction's connection: values formatted client-side. */
  query<T extends QueryResult = QueryResult>(
    sql: string | MysqlQueryOptions,
    values?: MysqlValues,
  ): Promise<[T, FieldPacket[]]>;
  /** mysql2's `execute()` on the transaction's connection: a prepared statement from its cache. */
  execute<T extends QueryResult = QueryResult>(
    sql: string | MysqlQueryOptions,
    values?: MysqlValues,
  ): Promise<[T, FieldPacket[]]>;
}

const passed: ReadonlySet<string> = new Set(passedOptions);

/**
 * A statement (SQL text or mysql2's options object) split into what the cluster routes by
 * (`sql`), its values and the driver's settings; a ConfigError for an option it would not honour.
 */
function splitStatement(
  statement: string | MysqlQueryOptions,
  values: MysqlValues | undefined,
  execute: boolean,
): { sql: string; values: MysqlValues | undefined; settings: StatementSettings | undefined } | ConfigError {
  if (typeof values === 'function') return callbackRefused();
  if (typeof statement !== 'object' || statement === null) {
    return { sql: statement, values, settings: execute ? { execute } : undefined };
  }
  const refuse = (path: string, message: string) => new ConfigError('query', [{ path, message }]);
  const { sql, values: objectValues, ...options } = statement;
  for (const key of Object.keys(options)) {
    if (key === 'timeout') {
      return refuse('timeout', 'mysql2 destroys the connection on expiry: use queryTimeoutMs or a signal');
    }
    if (!passed.has(key)) return refuse(key, `not one of ${passedOptions.join(', ')}`);
  }
  if (typeof sql !== 'string') return refuse('sql', 'an options object needs its SQL text as a string');
  return {
    sql,
    values: values ?? (objectValues as MysqlValues | undefined),
    settings: { ...options, ...(execute ? { execute } : {}) },
  };
}

/**
 * A MySQL/MariaDB primary/replica pool on `mysql2/promise`. `query()` and `execute()` are
 * mysql2's and resolve to `[rows, fields]`: `query()` formats values client-side (`IN (?)` with
 * a list, `SET ?` with an object), `execute()` runs prepared statements cached per connection.
 */
export class MysqlPool extends SqlCluster<Connection, MysqlConnectionConfig, MysqlResult> {
  constructor(options: MysqlPoolOptions) {
    super(mysqlDriver, options);
  }

  /**
   * Runs one statement on the right server (see `SqlCluster#query`): SQL text or mysql2's
   * options object (`{ sql, values, rowsAsArray, nestTables, typeCast, … }`, routed by its
   * `sql`; values given beside it win, as with mysql2), then our per-query options.
   */
  override query<T extends QueryResult = QueryResult>(
    sql: string | MysqlQueryOptions,
    values?: MysqlValues,
    options?: QueryOptions,
  ): Promise<[T, FieldPacket[]]> {
    return this.#route(sql, values, options, false) as Promise<[T, FieldPacket[]]>;
  }

  /**
   * Runs one prepared statement on the right server, routed like `query()`: mysql2's
   * `execute()`, from a per-connection cache of `statementCacheSize` statements. Values are
   * bound by the server, so they are scalars (no lists for `IN (?)`, no objects for `SET ?`).
   */
  execute<T extends QueryResult = QueryResult>(
    sql: string | MysqlQueryOptions,
    values?: MysqlValues,
    options?: QueryOptions,
  ): Promise<[T, FieldPacket[]]> {
    return this.#route(sql, values, options, true) as Promise<[T, FieldPacket[]]>;
  }

  #route(
    statement: string | MysqlQueryOptions,
    values: MysqlValues | undefined,
    options: QueryOptions | undefined,
    execute: boolean,
  ): Promise<MysqlResult> {
    const split = splitStatement(statement, values, execute);
    if (split instanceof ConfigError) return Promise.reject(split);
    return this.routeStatement(split.sql, split.values, options, split.settings);
  }

  protected override transactionHandle(conn: Connection, attempt: number): MysqlTransaction {
    const handle = super.transactionHandle(conn, attempt) as unknown as MysqlTransaction;
    const run =
      (execute: boolean) =>
      <T extends QueryResult>(statement: string | MysqlQueryOptions, values?: MysqlValues) => {
        const split = splitStatement(statement, values, execute);
        if (split instanceof ConfigError) return Promise.reject(split);
        return this.runInTransaction(handle, split.sql, split.values, split.settings) as Promise<
          [T, FieldPacket[]]
        >;
      };
    handle.query = run(false);
    handle.execute = run(true);
    return handle;
  }

  /** Each connection lent by getConnection() as its borrower sees it → the pooled connection. */
  readonly #lentViews = new WeakMap<object, { conn: Connection; giveBack(close: boolean): void }>();

  /**
   * Borrows a connection with `release()`, like mysql2's `pool.getConnection()`, for code written
   * against mysql2's pool: `release()` gives it back (a second call does nothing), `release(err)`
   * or `destroy()` closes it and frees its slot. A transaction it left open (`beginTransaction()`,
   * or `START TRANSACTION` through its `query()`/`execute()`) is rolled back before anyone else
   * gets it. Pass `role: 'replica'` for read-only work. `pool.release(conn)` takes it too.
   */
  async getConnection(
    options: { role?: 'primary' | 'replica' | undefined; signal?: AbortSignal | undefined } = {},
  ): Promise<MysqlPoolConnection> {
    const invalid = badOptions(getConnectionOptionsCheck, options);
    if (invalid !== undefined) throw invalid;
    const { role = 'primary', signal } = options;
    const conn = await this.acquire(role, signal === undefined ? undefined : { signal });
    let lent = true;
    const giveBack = (close: boolean) => {
      if (!lent) return;
      lent = false;
      super.release(conn, close);
    };
    // A view of the connection, not the connection changed: the next borrower (of acquire() too)
    // gets mysql2's own methods, and a view kept after release() cannot give back someone else's.
    const methods: Record<string | symbol, unknown> = {
      ...trackedStatementMethods(conn),
      release: (error?: Error | boolean) => giveBack(Boolean(error)),
      destroy: () => giveBack(true),
    };
    const view = new Proxy(conn, {
      get: (target, key) => (Object.hasOwn(methods, key) ? methods[key] : Reflect.get(target, key, target)),
    }) as MysqlPoolConnection;
    this.#lentViews.set(view, { conn, giveBack });
    return view;
  }

  /** Returns a connection from `acquire()` or `getConnection()`; `broken` closes it instead. */
  override release(conn: Connection, broken = false): void {
    const lent = this.#lentViews.get(conn);
    if (lent === undefined) super.release(conn, broken);
    else lent.giveBack(broken);
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
