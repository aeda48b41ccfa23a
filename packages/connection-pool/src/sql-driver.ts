import { ConfigError } from '@noa/core';
import type { isolationLevels } from './call-options.js';
import type { SqlDialect } from './routing/classify-statement.js';

/** SQL transaction isolation levels (both Postgres and MySQL spell them this way). */
export type IsolationLevel = (typeof isolationLevels)[number];

/** The fixed SQL text of each level: what reaches the server is one of these, never the caller's text. */
const isolationSql: ReadonlyMap<string, string> = new Map<IsolationLevel, string>([
  ['read uncommitted', 'READ UNCOMMITTED'],
  ['read committed', 'READ COMMITTED'],
  ['repeatable read', 'REPEATABLE READ'],
  ['serializable', 'SERIALIZABLE'],
]);

/**
 * `ISOLATION LEVEL …` text for `isolation`. Throws `ConfigError` naming `isolation` for
 * anything else: `withTransaction` validates its options first, but a driver may be called
 * directly.
 */
export function isolationLevelSql(isolation: IsolationLevel): string {
  const sql = isolationSql.get(isolation);
  if (sql === undefined) {
    throw new ConfigError('withTransaction', [
      { path: 'isolation', message: `not one of ${[...isolationSql.keys()].join(', ')}` },
    ]);
  }
  return `ISOLATION LEVEL ${sql}`;
}

/**
 * The values of one statement: a list for positional placeholders (`?`, `$1`), or an object for
 * named ones (`:name`) where the driver takes them (mysql2 with `namedPlaceholders`). Each pool
 * class types what its driver takes (`PgPool`: lists only); the cluster passes them through.
 */
export type StatementValues = readonly unknown[] | Readonly<Record<string, unknown>>;

/** A driver's own settings for one statement (see `SqlDriver#query`). */
export type StatementSettings = Readonly<Record<string, unknown>>;

/** What a driver needs to open a connection. */
export interface ConnectSettings<Config> {
  config: Config;
  connectTimeoutMs: number;
  statementCacheSize: number;
  /** Called once when the connection breaks while idle or busy (socket closed, server gone). */
  onBroken: (error: unknown) => void;
}

/**
 * The small interface every SQL backend implements (`pg`, `mysql2`). The cluster does
 * pooling, routing, health and transactions on top; a driver only talks to one connection.
 */
export interface SqlDriver<Conn, Config, Result> {
  readonly name: string;
  readonly dialect: SqlDialect;
  /** Error codes retried by `withTransaction` unless `retryOn` is given. */
  readonly defaultRetryCodes: readonly string[];
  /**
   * URL schemes its connection strings may use (`postgres`…). A server given as a URL with
   * another scheme (another database's) is refused at construction; no list, no check.
   */
  readonly urlSchemes?: readonly string[];
  connect(settings: ConnectSettings<Config>): Promise<Conn>;
  close(conn: Conn): Promise<void>;
  /** Drops the connection's socket at once (a query on it did not answer in time). */
  abort(conn: Conn): void;
  /**
   * Runs one statement. `settings` are the driver's own per-statement settings, passed through
   * untouched from its pool class (mysql2: `{ execute: true }` for a prepared statement from the
   * per-connection cache; pg: a `QueryConfig`'s `rowMode`, `types`, `name`); a plain `query()`
   * passes none.
   */
  query(
    conn: Conn,
    sql: string,
    values: StatementValues | undefined,
    settings?: StatementSettings,
  ): Promise<Result>;
  /** Cheap liveness probe. */
  ping(conn: Conn): Promise<void>;
  /** Replication delay of the server behind `conn` in ms (0 for a primary; Infinity when replication is stopped). */
  replicationLagMs(conn: Conn): Promise<number>;
  /** Statements that open a transaction. */
  beginStatements(isolation: IsolationLevel | undefined, readOnly: boolean): string[];
  /** True for errors that mean the connection or server is gone (not a SQL error). */
  isConnectionError(error: unknown): boolean;
  /** Codes an error carries (SQLSTATE, errno, driver code), for `retryOn` matching. */
  errorCodes(error: unknown): string[];
}
