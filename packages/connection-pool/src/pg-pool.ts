import { ConfigError } from '@noa/core';
import type {
  Client,
  QueryArrayConfig,
  QueryArrayResult,
  QueryConfig,
  QueryResult,
  QueryResultRow,
} from 'pg';
import { badOptions, connectOptionsCheck } from './call-options.js';
import type { ClusterOptions } from './cluster-options.js';
import { type PgConnectionConfig, pgDriver } from './drivers/pg-driver.js';
import {
  callbackRefused,
  type QueryOptions,
  SqlCluster,
  type Transaction,
  type TransactionOptions,
} from './sql-cluster.js';
import type { StatementSettings } from './sql-driver.js';

/** Options of {@link createPgPool}: servers are connection strings or `pg` ClientConfig objects. */
export type PgPoolOptions = ClusterOptions<PgConnectionConfig>;

/** The transaction handle of a {@link PgPool}: `query()` takes text or a `QueryConfig` and is typed by row like `pg`'s. */
export interface PgTransaction extends Omit<Transaction<Client, QueryResult<QueryResultRow>>, 'query'> {
  query<R extends unknown[] = unknown[]>(
    config: QueryArrayConfig,
    values?: readonly unknown[],
  ): Promise<QueryArrayResult<R>>;
  query<R extends QueryResultRow = QueryResultRow>(
    sql: string | QueryConfig,
    values?: readonly unknown[],
  ): Promise<QueryResult<R>>;
}

/** The callback of `pg.Pool#query`'s callback forms: `(error)` or `(undefined, result)`. */
export type PgQueryCallback<Result> = (error: Error, result: Result) => void;

type AnyResult = QueryResult<QueryResultRow> | QueryArrayResult;

/**
 * A `QueryConfig` split into what the cluster routes by (`text`), its values and the rest for
 * the driver; a ConfigError for what would lose its result or cannot run on a pooled query.
 */
function splitConfig(
  config: QueryConfig,
  values: readonly unknown[] | undefined,
): { text: string; values: readonly unknown[] | undefined; settings: StatementSettings } | ConfigError {
  const { text, values: configValues, ...settings } = config as QueryConfig & Record<string, unknown>;
  const refuse = (path: string, message: string) => new ConfigError('query', [{ path, message }]);
  if (typeof settings.submit === 'function') {
    return refuse(
      'submit',
      'a Submittable (pg-cursor, pg-query-stream) needs a client of its own: use connect()',
    );
  }
  if (settings.callback !== undefined) {
    return refuse(
      'callback',
      'pass the callback as the last argument, as with pg.Pool#query, not in the config',
    );
  }
  if (typeof text !== 'string') return refuse('text', 'a QueryConfig needs its SQL text as a string');
  return { text, values: values ?? configValues, settings };
}

/**
 * A Postgres primary/replica pool on `pg`. `query()` has the shapes of `pg.Pool#query` (text or
 * `QueryConfig`, values, a callback), so existing code keeps working while reads move to replicas.
 */
export class PgPool extends SqlCluster<Client, PgConnectionConfig, QueryResult<QueryResultRow>> {
  constructor(options: PgPoolOptions) {
    super(pgDriver, options);
  }

  /**
   * Runs one statement on the right server (see `SqlCluster#query`), in `pg.Pool#query`'s forms:
   * SQL text or a `QueryConfig` (`{ text, values, rowMode, types, name }`, routed by its text),
   * values, then our per-query options; or, as pg.Pool does, a callback last, called with
   * `(error)` or `(undefined, result)`, and nothing returned. A Submittable (a cursor, a stream)
   * is refused with a ConfigError: it needs a client of its own (`connect()`).
   */
  override query<R extends QueryResultRow = QueryResultRow>(
    sql: string,
    values?: readonly unknown[],
    options?: QueryOptions,
  ): Promise<QueryResult<R>>;
  override query<R extends unknown[] = unknown[]>(
    config: QueryArrayConfig,
    values?: readonly unknown[],
    options?: QueryOptions,
  ): Promise<QueryArrayResult<R>>;
  override query<R extends QueryResultRow = QueryResultRow>(
    sqlOrConfig: string | QueryConfig,
    values?: readonly unknown[],
    options?: QueryOptions,
  ): Promise<QueryResult<R>>;
  override query<R extends unknown[] = unknown[]>(
    config: QueryArrayConfig,
    callback: PgQueryCallback<QueryArrayResult<R>>,
  ): void;
  override query<R extends QueryResultRow = QueryResultRow>(
    sqlOrConfig: string | QueryConfig,
    callback: PgQueryCallback<QueryResult<R>>,
  ): void;
  override query<R extends QueryResultRow = QueryResultRow>(
    sqlOrConfig: string | QueryConfig,
    values: readonly unknown[],
    callback: PgQueryCallback<QueryResult<R>>,
  ): void;
  override query(
    sqlOrConfig: string | QueryConfig,
    valuesOrCallback?: readonly unknown[] | PgQueryCallback<AnyResult>,
    optionsOrCallback?: QueryOptions | PgQueryCallback<AnyResult>,
  ): Promise<AnyResult> | undefined {
    let values = valuesOrCallback;
    let options = optionsOrCallback;
    let callback: PgQueryCallback<AnyResult> | undefined;
    if (typeof values === 'function') {
      callback = values;
      values = undefined;
      options = undefined;
    } else if (typeof options === 'function') {
      callback = options;
      options = undefined;
    }
    const result = this.#query(sqlOrConfig, values, options);
    if (callback === undefined) return result;
    const done = callback;
    // Outside the promise chain, so a callback that throws is an uncaught exception, as with pg.
    result.then(
      (answer) => queueMicrotask(() => done(undefined as unknown as Error, answer)),
      (error: Error) => queueMicrotask(() => done(error, undefined as unknown as AnyResult)),
    );
    return undefined;
  }

  #query(
    sqlOrConfig: string | QueryConfig,
    values: readonly unknown[] | undefined,
    options: QueryOptions | undefined,
  ): Promise<AnyResult> {
    if (typeof sqlOrConfig !== 'object' || sqlOrConfig === null) {
      return super.query(sqlOrConfig, values, options);
    }
    const split = splitConfig(sqlOrConfig, values);
    if (split instanceof ConfigError) return Promise.reject(split);
    return this.routeStatement(split.text, split.values, options, split.settings);
  }

  protected override transactionHandle(conn: Client, attempt: number): PgTransaction {
    const handle = super.transactionHandle(conn, attempt);
    const plain = handle.query;
    (handle as unknown as PgTransaction).query = ((
      sqlOrConfig: string | QueryConfig,
      values?: readonly unknown[],
    ) => {
      if (typeof values === 'function') return Promise.reject(callbackRefused());
      if (typeof sqlOrConfig !== 'object' || sqlOrConfig === null) return plain(sqlOrConfig, values);
      const split = splitConfig(sqlOrConfig, values);
      if (split instanceof ConfigError) return Promise.reject(split);
      return this.runInTransaction(handle, split.text, split.values, split.settings);
    }) as PgTransaction['query'];
    return handle as unknown as PgTransaction;
  }

  /**
   * Borrows a primary client with `release()`, like `pg.Pool#connect`, for code written
   * against `pg.Pool` (cursors, COPY, LISTEN). Pass `role: 'replica'` for read-only work.
   */
  async connect(
    options: { role?: 'primary' | 'replica' | undefined; signal?: AbortSignal | undefined } = {},
  ): Promise<PgPoolClient> {
    const invalid = badOptions(connectOptionsCheck, options);
    if (invalid !== undefined) throw invalid;
    const { role = 'primary', signal } = options;
    const client = (await this.acquire(role, signal === undefined ? undefined : { signal })) as PgPoolClient;
    // Closed only for a truthy argument, as pg.Pool does: pg's own callbacks pass null on success,
    // and `client.query(sql, (err) => client.release(err))` must give back a working client.
    client.release = (error?: Error | boolean) => {
      this.release(client, Boolean(error));
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
  /**
   * Gives the client back; pass an error (or `true`) to close it instead. As with `pg.Pool`, only a
   * truthy argument closes it: `release(null)` (a pg callback's error on success) gives it back.
   */
  release(error?: Error | boolean): void;
};

/** Creates a {@link PgPool}; bad options throw a `ConfigError` naming the field. */
export function createPgPool(options: PgPoolOptions): PgPool {
  return new PgPool(options);
}
