import { z } from 'zod';

/** Where the services are, for the services mode (see `createApp`). */
export interface ServicesConfig {
  redisUrl: string;
  databaseUrl: string;
  amqpUrl: string;
  /**
   * Prefix of everything the demo creates in the services: Redis keys, the Postgres schema,
   * queue names. Letters, digits and `_`, starting with a letter (default `noa_demo`), so that
   * tests and several demos can share one Redis, Postgres and RabbitMQ.
   */
  namespace?: string;
  /** How many instances share the services (default 2): while Redis is down each allows limit / instances. */
  instances?: number;
}

/** What the demo reads from its environment. */
export interface DemoEnv {
  port: number;
  /** Set when REDIS_URL, DATABASE_URL and AMQP_URL are; otherwise the app runs in memory. */
  services?: ServicesConfig;
  /**
   * `SHUTDOWN_DELAY_MS`, when set: how long SIGTERM keeps serving with readiness failing before
   * the server closes (the server's default is 5,000: time for the endpoints to drop the pod).
   */
  shutdownDelayMs?: number;
}

/** A malformed or missing environment variable; `variable` names it. */
export class DemoEnvError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
    this.name = 'DemoEnvError';
  }
}

// An empty variable counts as unset, as in the shell `FOO= pnpm start`.
const optional = <T extends z.ZodType>(schema: T) =>
  z.preprocess((value) => (value === '' ? undefined : value), schema.optional());

const serviceUrl = (protocol: RegExp, example: string) =>
  optional(z.url({ protocol, error: `must be a URL like ${example}` }));

const envSchema = z.object({
  PORT: optional(
    z.coerce
      .number({ error: 'must be a port number' })
      .int('must be a port number')
      .min(0, 'must be a port number')
      .max(65_535, 'must be a port number'),
  ),
  REDIS_URL: serviceUrl(/^rediss?$/, 'redis://127.0.0.1:6379'),
  DATABASE_URL: serviceUrl(/^postgres(ql)?$/, 'postgres://noa:noa@127.0.0.1:5432/noa'),
  AMQP_URL: serviceUrl(/^amqps?$/, 'amqp://guest:guest@127.0.0.1:5672'),
  SHUTDOWN_DELAY_MS: optional(
    z.coerce
      .number({ error: 'must be a number of milliseconds' })
      .int('must be a number of milliseconds')
      .min(0, 'must be a number of milliseconds')
      .max(60_000, 'must be at most 60000'),
  ),
});

/** The variables that switch the demo to its services mode, all three or none. */
export const serviceVariables = ['REDIS_URL', 'DATABASE_URL', 'AMQP_URL'] as const;

/**
 * Reads `PORT` (default 3000) and the service URLs as `scripts/services env` prints them.
 * None of the URLs set: memory mode. All three: services mode. Anything else throws
 * {@link DemoEnvError} naming the variable, without echoing its value (it may hold a password).
 */
export function readDemoEnv(env: Readonly<Record<string, string | undefined>>): DemoEnv {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0]);
    throw new DemoEnvError(variable, `${variable} ${issue.message}`);
  }
  const { PORT, REDIS_URL, DATABASE_URL, AMQP_URL, SHUTDOWN_DELAY_MS } = parsed.data;
  const port = PORT ?? 3000;
  const delay = SHUTDOWN_DELAY_MS === undefined ? {} : { shutdownDelayMs: SHUTDOWN_DELAY_MS };
  const missing = serviceVariables.filter((variable) => parsed.data[variable] === undefined);
  if (missing.length === serviceVariables.length) return { port, ...delay };
  if (REDIS_URL === undefined || DATABASE_URL === undefined || AMQP_URL === undefined) {
    throw new DemoEnvError(
      missing[0]!,
      `the services mode needs ${serviceVariables.join(', ')}; ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not set ` +
        `(run eval "$(scripts/services env)" first, or unset them all for the memory mode)`,
    );
  }
  return { port, ...delay, services: { redisUrl: REDIS_URL, databaseUrl: DATABASE_URL, amqpUrl: AMQP_URL } };
}
