import { randomBytes } from 'node:crypto';

/** Longest prefix kept, so a unique name stays within PostgreSQL's 63-byte identifier limit. */
const maxPrefixLength = 40;

/**
 * A name unique to one test run, safe as a Redis key prefix, a Postgres schema, a MariaDB
 * database, a RabbitMQ vhost, a queue or topic prefix: lower case letters, digits and
 * underscores, starting with a letter, at most 63 characters.
 */
export function uniqueName(prefix = 't'): string {
  let clean = prefix
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, maxPrefixLength);
  if (!/^[a-z]/.test(clean)) clean = `t${clean}`.slice(0, maxPrefixLength);
  return `${clean}_${process.pid.toString(36)}_${randomBytes(4).toString('hex')}`;
}

/** The names one test uses in every backend, all derived from one unique name. */
export interface Namespace {
  /** The unique name everything below derives from (`[a-z][a-z0-9_]*`, ≤ 63 chars). */
  readonly name: string;
  /** Redis key prefix, `<name>:`; remove its keys with `clearRedisPrefix`. */
  readonly keyPrefix: string;
  /** PostgreSQL schema; create and drop it with `withPostgresSchema`. */
  readonly schema: string;
  /** MariaDB/MySQL database; create and drop it with `withMysqlDatabase`. */
  readonly database: string;
  /** RabbitMQ virtual host; create and delete it with `withRabbitVhost`. */
  readonly vhost: string;
  /** Prefix for queue names (RabbitMQ, SQS, NATS subjects), `<name>.` */
  readonly queuePrefix: string;
  /** Prefix for Kafka topic names, `<name>.` */
  readonly topicPrefix: string;
}

/** The namespace derived from an already unique `name` (pure: same name, same namespace). */
export function namespaceFor(name: string): Namespace {
  if (!/^[a-z][a-z0-9_]{0,62}$/.test(name))
    throw new Error(`namespace name must match [a-z][a-z0-9_]{0,62}, got ${JSON.stringify(name)}`);
  return {
    name,
    keyPrefix: `${name}:`,
    schema: name,
    database: name,
    vhost: name,
    queuePrefix: `${name}.`,
    topicPrefix: `${name}.`,
  };
}

/**
 * A fresh namespace for one test (file): every backend name a test needs, unique to this run,
 * so test files can run in parallel against the shared services without seeing each other.
 */
export function createNamespace(prefix = 't'): Namespace {
  return namespaceFor(uniqueName(prefix));
}
