import { serviceUrl } from './env.js';
import { uniqueName } from './namespace.js';

/** A PostgreSQL schema created for one test, with a URL whose connections use it by default. */
export interface PostgresSchema {
  /** The schema name (also the `search_path`). */
  readonly schema: string;
  /** The server URL plus `options=-c search_path=<schema>`: unqualified tables land in the schema. */
  readonly url: string;
  /** `search_path` value for clients that take it as an option instead of in the URL. */
  readonly searchPath: string;
  /** `DROP SCHEMA … CASCADE`: removes the schema and everything in it. */
  drop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** `url` with `options=-c search_path=<schema>` set (replacing any `options` it had). */
export function withSearchPath(url: string, schema: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set('options', `-c search_path=${schema}`);
  return parsed.toString();
}

/** Double-quotes an SQL identifier. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Runs statements on a short-lived connection (pg is imported only when first needed). */
export async function postgresExec(url: string, ...statements: string[]): Promise<void> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const statement of statements) await client.query(statement);
  } finally {
    await client.end();
  }
}

/**
 * Creates a schema on the PostgreSQL server at `url` (default: `DATABASE_URL`) and returns a
 * URL that uses it by default, plus `drop()`. Tests share one database and stay apart by schema.
 */
export async function withPostgresSchema(
  url: string = serviceUrl('postgres'),
  schema: string = uniqueName('s'),
): Promise<PostgresSchema> {
  await postgresExec(url, `CREATE SCHEMA ${quoteIdentifier(schema)}`);
  const drop = () => postgresExec(url, `DROP SCHEMA IF EXISTS ${quoteIdentifier(schema)} CASCADE`);
  return {
    schema,
    url: withSearchPath(url, schema),
    searchPath: schema,
    drop,
    [Symbol.asyncDispose]: drop,
  };
}
