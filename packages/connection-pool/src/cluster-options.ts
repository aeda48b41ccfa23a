import { type Clock, type Logger, maxTimerMs } from '@noa/core';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { poolOptionsObject, timerBoundMessage } from './pool-options.js';

const connectionConfig = z.union([z.string().min(1), z.record(z.string(), z.unknown())]);

/**
 * The scheme of a connection string that is a URL (`mysql` in `mysql://…`), or undefined for
 * other strings. `socket:` has no `//` in pg's form, so a bare `name:` counts too when it is
 * not a Windows drive letter or a host:port.
 */
export function urlScheme(value: string): string | undefined {
  return /^([a-z][a-z0-9+.-]+):(\/\/|(?!\d))/i.exec(value)?.[1]?.toLowerCase();
}

/** Issues for connection strings whose URL scheme is not one of `schemes` (another database's). */
export function foreignUrlIssues(
  servers: { primary: unknown; replicas: readonly unknown[] },
  schemes: readonly string[],
): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  const check = (value: unknown, path: string) => {
    if (typeof value !== 'string') return;
    const scheme = urlScheme(value);
    if (scheme !== undefined && !schemes.includes(scheme)) {
      issues.push({ path, message: `a ${scheme}:// URL; this pool reads ${schemes.join(', ')} URLs` });
    }
  };
  check(servers.primary, 'primary');
  for (const [index, replica] of servers.replicas.entries()) check(replica, `replicas.${index}`);
  return issues;
}

/**
 * Issues for connection strings `problem` refuses (a server given as a string, or as options
 * whose `option` field holds one), each naming its server's field.
 */
export function connectionStringIssues(
  servers: { primary: unknown; replicas: readonly unknown[] },
  problem: (value: string) => string | undefined,
  option: string | undefined,
): { path: string; message: string }[] {
  const issues: { path: string; message: string }[] = [];
  const check = (value: unknown, path: string) => {
    if (typeof value === 'string') {
      const message = problem(value);
      if (message !== undefined) issues.push({ path, message });
    } else if (option !== undefined && typeof value === 'object' && value !== null) {
      const inner = (value as Record<string, unknown>)[option];
      if (typeof inner === 'string') check(inner, `${path}.${option}`);
    }
  };
  check(servers.primary, 'primary');
  for (const [index, replica] of servers.replicas.entries()) check(replica, `replicas.${index}`);
  return issues;
}

/** Per-server pool settings, applied to the primary's pool and to each replica's: the pool options minus those the cluster sets itself. */
export const nodePoolSchema = poolOptionsObject
  .omit({ name: true, logger: true, clock: true, registry: true })
  .refine((pool) => pool.max >= pool.min, { path: ['max'], message: 'max must be >= min' });

/** Failover callback: given why the primary failed, returns a new primary's config (or nothing to keep trying the old one). */
export type FailoverHandler<Config> = (event: {
  lastError: unknown;
  current: Config;
}) => Promise<Config | undefined> | Config | undefined;

/** Options of a primary/replica SQL cluster pool (`createPgPool`, `createMysqlPool`). */
export const clusterOptionsSchema = z
  .object({
    /** Name in logs and the `pool` metric label (`<name>:primary`, `<name>:replica0`…). */
    name: z.string().min(1).default('db'),
    /** The primary (writer): a connection string or the driver's connection options. */
    primary: connectionConfig,
    /** Read replicas; reads go to them, writes never do. */
    replicas: z.array(connectionConfig).default([]),
    /** Pool settings of each server. */
    pool: nodePoolSchema.prefault({}),
    /** Connect timeout per connection attempt. */
    connectTimeoutMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).default(5_000),
    /**
     * A statement running longer than this has its connection closed and rejects with
     * `QueryTimeoutError` (protects against frozen servers; off by default, since long reports
     * are legitimate). Checked by one timer per pool, not one per query.
     */
    queryTimeoutMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).optional(),
    /** After a write, that session's reads stay on the primary this long (0 turns it off). */
    readYourWritesMs: z.number().int().nonnegative().max(maxTimerMs, timerBoundMessage).default(2_000),
    /** How reads pick a replica. */
    loadBalancing: z.enum(['round-robin', 'least-busy']).default('round-robin'),
    /** A replica further behind than this leaves rotation until it catches up. */
    maxReplicaLagMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).default(5_000),
    /** How often replica lag and health are measured. */
    healthCheckIntervalMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).default(1_000),
    /**
     * How often a ping on an idle (or new) primary connection checks the primary (unref'd
     * timer; off by default, like HikariCP's keepalive and pgpool's health check). Without it
     * the primary's `health()` changes only when traffic connects; with it an idle primary that
     * is frozen shows `unresponsive`, one that is gone `down`, within this interval plus the
     * probe's deadline (`queryTimeoutMs`, else `connectTimeoutMs`).
     */
    primaryHealthCheckIntervalMs: z.number().int().positive().max(maxTimerMs, timerBoundMessage).optional(),
    /** With no healthy replica, reads go to the primary (`primary`) or fail (`error`). */
    replicaFallback: z.enum(['primary', 'error']).default('primary'),
    /** Prepared statements kept per connection (LRU; 0 turns caching off). */
    statementCacheSize: z.number().int().nonnegative().default(100),
    /** Extra function names that make a read go to the primary (on top of nextval, pg_advisory_lock…). */
    writeFunctions: z.array(z.string().min(1)).default([]),
    /** Default retries of `withTransaction` on a retryable error. */
    maxTransactionRetries: z.number().int().nonnegative().default(3),
    /** Called when the primary is unreachable; may return a new primary to switch to. */
    failover: z.custom<FailoverHandler<unknown>>((value) => typeof value === 'function').optional(),
    logger: z.custom<Logger>((value) => typeof value === 'object' && value !== null).optional(),
    clock: z.custom<Clock>((value) => typeof value === 'object' && value !== null).optional(),
    registry: z.custom<Registry>((value) => typeof value === 'object' && value !== null).optional(),
  })
  .strict();

/** Options accepted by a cluster pool; `Config` is the driver's connection options type. */
export type ClusterOptions<Config> = Omit<
  z.input<typeof clusterOptionsSchema>,
  'primary' | 'replicas' | 'failover'
> & {
  primary: Config;
  // `| undefined`: a value read from config may be missing (exactOptionalPropertyTypes), as the
  // zod-typed options above allow.
  replicas?: Config[] | undefined;
  failover?: FailoverHandler<Config> | undefined;
};

/** Parsed cluster options. */
export type ResolvedClusterOptions = z.output<typeof clusterOptionsSchema>;
