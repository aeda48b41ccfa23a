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

/**
 * A driver's own settings for one statement (`SqlDriver#query`'s fourth argument): set by its
 * pool class from the caller's statement, passed through unread by the cluster. Each driver
 * reads its own fields; a plain `query()` passes none. Typed here without the drivers' types so
 * that the main entry imports no optional peer; each is the driver's field of the same name.
 */
export interface StatementSettings {
  /** mysql2: run through `execute()`, a prepared statement from the per-connection cache, instead of `query()` (`MysqlPool#execute`). */
  readonly execute?: boolean;
  /** mysql2: `:name` placeholders, the values an object (overrides the connection's setting). */
  readonly namedPlaceholders?: boolean;
  /** mysql2: each row's columns nested by table (`true`), or named `table<separator>column` (a string). */
  readonly nestTables?: boolean | string;
  /** mysql2: whether column values are converted to JavaScript types, or a function converting them (`(field, next) => …`). */
  readonly typeCast?: boolean | ((field: never, next: () => unknown) => unknown);
  /** mysql2: rows as arrays instead of objects. */
  readonly rowsAsArray?: boolean;
  /** mysql2: BIGINT and DECIMAL values beyond 2^53 as strings. */
  readonly supportBigNumbers?: boolean;
  /** mysql2: with `supportBigNumbers`, every BIGINT and DECIMAL value as a string. */
  readonly bigNumberStrings?: boolean;
  /** mysql2: date columns as strings (all, or those of the listed types). */
  readonly dateStrings?: boolean | readonly ('TIMESTAMP' | 'DATETIME' | 'DATE')[];
  /** mysql2: the time zone of stored local dates (`'local'`, `'Z'`, `'+HH:MM'`). */
  readonly timezone?: string;
  /** pg: rows as arrays instead of objects (a `QueryArrayConfig`). */
  readonly rowMode?: 'array';
  /** pg: the type parsers of this statement's columns instead of the client's. */
  readonly types?: { readonly getTypeParser: (...args: never[]) => unknown };
  /** pg: the prepared statement's name; without it a parameterized statement is named from the statement cache. */
  readonly name?: string;
}

/**
 * Idle time before a connection's first TCP keep-alive probe, when its config sets none. Well
 * under what NAT gateways, load balancers and proxies keep an idle flow (about 4 to 6 minutes in
 * the big clouds), which then drop it without a word (ether/ueberDB#998); the OS default is 2 hours
 * on Linux.
 */
export const keepAliveInitialDelayMs = 10_000;

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
  /**
   * Why a connection string will not parse (checked at construction, without connecting, so a
   * typo is a `ConfigError`, not an outage), else undefined. Never quotes the string.
   */
  connectionStringProblem?(value: string): string | undefined;
  /** The field of the driver's connection options that holds a connection string (`connectionString`, `uri`). */
  readonly connectionStringOption?: string;
  connect(settings: ConnectSettings<Config>): Promise<Conn>;
  close(conn: Conn): Promise<void>;
  /** Lets the connection's socket no longer keep the process alive (`allowExitOnIdle`), or again (`ref`). */
  unref?(conn: Conn): void;
  ref?(conn: Conn): void;
  /** Drops the connection's socket at once (a query on it did not answer in time). */
  abort(conn: Conn): void;
  /**
   * Runs one statement. `settings` are the driver's own per-statement settings, passed through
   * untouched from its pool class (mysql2: `execute` for a prepared statement from the
   * per-connection cache, and the options object's fields; pg: a `QueryConfig`'s `rowMode`,
   * `types`, `name`); a plain `query()` passes none. A driver ignores the other driver's fields.
   */
  query(
    conn: Conn,
    sql: string,
    values: StatementValues | undefined,
    settings?: StatementSettings,
  ): Promise<Result>;
  /**
   * True when the server's last word on `conn` says it is inside a transaction (open, or failed
   * and awaiting ROLLBACK): the cluster rolls such a connection back as it is given back, so the
   * next borrower does not run in it. A driver that cannot tell leaves it out.
   */
  inTransaction?(conn: Conn): boolean;
  /**
   * True when `conn` can take no more statements: its borrower ended it, or it failed (pg:
   * `_ending`, not `_queryable`, what pg.Pool checks; mysql2: closing or a fatal error). Given
   * back, such a connection is closed instead of lent. A local read: no round trip.
   */
  unusable?(conn: Conn): boolean;
  /**
   * A statement of the driver's own still running on `conn` (pg: the DEALLOCATE of statements
   * its cache evicted, sent once the statement that evicted them settled), as a promise that
   * settles, never rejecting, when it has; else undefined. The cluster lends a connection given
   * back only once it has settled, so the next borrower's statements never queue behind it.
   */
  pendingWork?(conn: Conn): Promise<void> | undefined;
  /** Cheap liveness probe. */
  ping(conn: Conn): Promise<void>;
  /** Replication delay of the server behind `conn` in ms (0 for a primary; Infinity when replication is stopped). */
  replicationLagMs(conn: Conn): Promise<number>;
  /** Statements that open a transaction. */
  beginStatements(isolation: IsolationLevel | undefined, readOnly: boolean): string[];
  /** True for a connect error that means the server refused the credentials (not an outage). */
  isAuthenticationError?(error: unknown): boolean;
  /** True for errors that mean the connection or server is gone (not a SQL error). */
  isConnectionError(error: unknown): boolean;
  /** Codes an error carries (SQLSTATE, errno, driver code), for `retryOn` matching. */
  errorCodes(error: unknown): string[];
}
