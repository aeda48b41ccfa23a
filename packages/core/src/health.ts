import { z } from 'zod';
import { maxTimerMs, withDeadline } from './deadline.js';
import { parseOptions } from './errors.js';

/**
 * How a component serves, in the three states Spring Boot Actuator and MicroProfile Health use
 * (`UP`, `DOWN`, and a custom `DEGRADED`): `up` as configured; `degraded` answering, but from a
 * fallback (L1 only, a local rate-limit share, the primary for reads); `down` not answering.
 */
export type HealthStatus = 'up' | 'degraded' | 'down';

/**
 * One component's health, as every Noa package's `health()` returns it. Plain data: cheap to
 * build on each probe, JSON-friendly apart from `cause` (an `Error`, see {@link healthResponse}).
 */
export interface HealthReport {
  /** What this is: `rate-limiter`, `cache`, `pg-pool`, `queue:emails`… */
  component: string;
  status: HealthStatus;
  /** `Date.now()` when the state was read (for an active probe: when it answered). */
  checkedAt: number;
  /** The state behind `status`, small and component-specific (breaker state, fail mode…). */
  details: Record<string, unknown>;
  /** Why the component is not `up`, when an error is known (the last backend error). */
  cause?: unknown;
}

/** Something that reports one component's health: `() => cache.health()`, `() => db.checkHealth()`. */
export type HealthCheck = () => HealthReport | Promise<HealthReport>;

/** A check with its weight in readiness. */
export interface HealthCheckEntry {
  check: HealthCheck;
  /**
   * Whether the service is not ready while this component is `down` (default true). An optional
   * component that is down only makes the service `degraded`: mark so what the service can
   * answer without (a cache, a queue it only produces to), as Kubernetes advises against
   * readiness that fails on every replica at once for a dependency they share.
   */
  required?: boolean;
  /**
   * The component name a report gets when the check gives none (it times out, throws, or returns
   * no report). Default: the `component` of this check's last report, else the check's key, so a
   * probe that hangs reads `queue:emails` as its answers do, not `queue`.
   */
  component?: string;
}

/** The combined health of a service: `status` is the worst that counts, `ready` what a probe answers. */
export interface ServiceHealth {
  /** `down` when a required component is down; `degraded` when any other is not up; else `up`. */
  status: HealthStatus;
  /** False only when a required component is down (a degraded service still takes traffic). */
  ready: boolean;
  checkedAt: number;
  /**
   * Present (true) only once shutdown has begun: the service is then not ready whatever its
   * components say, so a terminating pod leaves the Service before its components close.
   */
  shuttingDown?: true;
  /** Each component's report, under the name it was given (none once shutting down). */
  components: Record<string, HealthReport & { required: boolean }>;
}

/**
 * Combines component reports into one service status. Pure: the reports and the time in, the
 * verdict out. `required` names which components' `down` makes the service not ready (default:
 * all of them); see {@link HealthCheckEntry.required}. With `shuttingDown: true` the service is
 * `down` and not ready whatever the reports say (see {@link readinessHandler}).
 */
export function combineHealth(
  reports: Record<string, HealthReport>,
  options: { optional?: readonly string[]; now?: number; shuttingDown?: boolean } = {},
): ServiceHealth {
  const optional = new Set(options.optional ?? []);
  const components: ServiceHealth['components'] = {};
  let ready = true;
  let allUp = true;
  for (const [name, report] of Object.entries(reports)) {
    const required = !optional.has(name);
    components[name] = { ...report, required };
    if (report.status !== 'up') allUp = false;
    if (report.status === 'down' && required) ready = false;
  }
  const checkedAt = options.now ?? Date.now();
  if (options.shuttingDown)
    return { status: 'down', ready: false, checkedAt, shuttingDown: true, components };
  return { status: !ready ? 'down' : allUp ? 'up' : 'degraded', ready, checkedAt, components };
}

/** Validates an option that must be an `AbortSignal` (zod's `instanceof`, named in the ConfigError). */
const abortSignalSchema = z.custom<AbortSignal>((value) => value instanceof AbortSignal, {
  message: 'expected an AbortSignal',
});

/** Options of {@link runHealthChecks} and {@link readinessHandler}. */
export const healthCheckOptionsSchema = z
  .object({
    /**
     * Longest one check may take (an active probe: a ping). One that has not answered by then
     * counts as `down` with a `TimeoutError` cause, so a hung backend cannot hang the probe
     * (keep it below the probe's `timeoutSeconds`, 1 s by default in Kubernetes).
     */
    timeoutMs: z.number().int().positive().max(maxTimerMs).default(800),
    /**
     * Whether the response body gives each cause's `name`, `code` and `message` (default
     * true; no stacks ever). Turn it off when the endpoint is reachable from outside: messages
     * name hosts and ports (URL passwords are masked by the packages).
     */
    exposeCauses: z.boolean().default(true),
    /**
     * Aborted when the service begins shutting down (on SIGTERM, by the app: the library installs
     * no signal handler). From then on the checks are not called and the service is not ready
     * (`shuttingDown: true`, 503), as @godaddy/terminus and lightship answer, so a terminating pod
     * stops getting traffic before its components close.
     */
    signal: abortSignalSchema.optional(),
  })
  .strict();

/** Input type of {@link healthCheckOptionsSchema}. */
export type HealthCheckOptions = z.input<typeof healthCheckOptionsSchema>;

const statuses: ReadonlySet<unknown> = new Set<HealthStatus>(['up', 'degraded', 'down']);

/** Whether a check's answer is a report `combineHealth` can read (from JavaScript anything comes). */
function isHealthReport(value: unknown): value is HealthReport {
  return typeof value === 'object' && value !== null && statuses.has((value as { status?: unknown }).status);
}

/** A short, secret-free description of what a check returned: its type and status only. */
function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value !== 'object') return `a ${typeof value}`;
  const status = (value as { status?: unknown }).status;
  return status === undefined ? 'an object without status' : `status ${JSON.stringify(status)}`;
}

/**
 * Each check's call still unanswered, by check: a probe that finds its check's last call
 * pending joins it instead of calling again, so a backend that hangs gets one call in flight
 * per check, not one more per probe (a probe every second against a frozen server would
 * otherwise queue a call a second until it thaws, all then answered at once).
 */
const inFlight = new WeakMap<HealthCheck, { call: Promise<HealthReport>; startedAt: number }>();

/**
 * How many `timeoutMs` a call is joined before the check is called again: a call that never
 * settles (a leaked promise, a dead connection nothing times out) then costs one more call per
 * this many probe timeouts, instead of keeping the component down for good once the backend is back.
 */
const joinTimeouts = 10;

/** The `component` of each check's last report: the name its down report gets when it gives none. */
const lastComponent = new WeakMap<HealthCheck, string>();

function callCheck(check: HealthCheck, timeoutMs: number): Promise<HealthReport> {
  const now = Date.now();
  const pending = inFlight.get(check);
  if (pending && now - pending.startedAt < timeoutMs * joinTimeouts) return pending.call;
  const call = Promise.resolve().then(check);
  inFlight.set(check, { call, startedAt: now });
  const settled = () => {
    if (inFlight.get(check)?.call === call) inFlight.delete(check);
  };
  call.then(settled, settled);
  return call;
}

/**
 * Runs every check at once, each under `timeoutMs`; a check that throws, rejects or times out
 * counts as its component `down` with the error as `cause` (never rejects), and so does one that
 * returns no report (a `TypeError`: from JavaScript, a forgotten `return` or `{ status: 'ok' }`);
 * that report is named as {@link HealthCheckEntry.component} says (the check's last report's name).
 * A check whose call from an earlier run has not answered yet is not called again: this run
 * waits for that call (under its own `timeoutMs`), so a hung backend is not sent one more probe
 * per run; a call unanswered for 10 × `timeoutMs` is given up and the check called again. Keep the
 * checks object (or its functions) and pass it to every run, as `readinessHandler` does; new
 * arrow functions on each run are new checks. Then {@link combineHealth}.
 */
export async function runHealthChecks(
  checks: Record<string, HealthCheck | HealthCheckEntry>,
  options: HealthCheckOptions = {},
): Promise<ServiceHealth> {
  const { timeoutMs, signal } = parseOptions('health check', healthCheckOptionsSchema, options);
  if (signal?.aborted) return combineHealth({}, { shuttingDown: true });
  const names = Object.keys(checks);
  const optional: string[] = [];
  const reports = await Promise.all(
    names.map(async (name): Promise<HealthReport> => {
      const entry = checks[name]!;
      const check = typeof entry === 'function' ? entry : entry.check;
      if (typeof entry !== 'function' && entry.required === false) optional.push(name);
      try {
        const report: unknown = await withDeadline(
          callCheck(check, timeoutMs),
          timeoutMs,
          `health check of ${name}`,
        );
        if (!isHealthReport(report))
          throw new TypeError(
            `health check of ${name} returned no HealthReport (status up, degraded or down): ${describe(report)}`,
          );
        if (typeof report.component === 'string') lastComponent.set(check, report.component);
        return report;
      } catch (error) {
        const component =
          (typeof entry !== 'function' ? entry.component : undefined) ?? lastComponent.get(check) ?? name;
        return { component, status: 'down', checkedAt: Date.now(), details: {}, cause: error };
      }
    }),
  );
  // Shutdown may have begun while the checks ran: a probe answered after it is not ready either.
  if (signal?.aborted) return combineHealth({}, { shuttingDown: true });
  return combineHealth(Object.fromEntries(names.map((name, index) => [name, reports[index]!])), { optional });
}

/** A cause as the response body gives it. */
export interface HealthCauseBody {
  name: string;
  message: string;
  code?: string;
}

/** One component in the response body. */
export interface ComponentHealthBody {
  component: string;
  status: HealthStatus;
  required: boolean;
  checkedAt: string;
  details: Record<string, unknown>;
  cause?: HealthCauseBody;
}

/** The JSON body of {@link healthResponse}. */
export interface ServiceHealthBody {
  status: HealthStatus;
  ready: boolean;
  checkedAt: string;
  /** Present (true) only once shutdown has begun. */
  shuttingDown?: true;
  components: Record<string, ComponentHealthBody>;
}

/** What a readiness endpoint answers: 200 while ready (`up` or `degraded`), else 503. */
export interface HealthResponse {
  statusCode: 200 | 503;
  headers: Record<string, string>;
  body: ServiceHealthBody;
}

/** The headers of every health answer: JSON, never cached. */
const jsonHeaders = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };

function causeBody(cause: unknown): HealthCauseBody {
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return typeof code === 'string'
      ? { name: cause.name, message: cause.message, code }
      : { name: cause.name, message: cause.message };
  }
  return { name: 'Error', message: String(cause) };
}

/**
 * `details` as JSON will send them: a bigint as its digits, and details JSON cannot hold (a
 * cycle) as `{ unserializable }` with the reason, so one odd report cannot make the response
 * throw when it is serialized (a rejected handler; in Fastify a 500).
 */
function jsonDetails(details: unknown): Record<string, unknown> {
  if (typeof details !== 'object' || details === null) return {};
  try {
    const text = JSON.stringify(details, (_key, value: unknown) =>
      typeof value === 'bigint' ? value.toString() : value,
    );
    return JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    return { unserializable: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * The HTTP answer for a {@link ServiceHealth}, framework-free: `reply.code(r.statusCode)
 * .headers(r.headers).send(r.body)` in Fastify, `res.status(r.statusCode).set(r.headers)
 * .json(r.body)` in Express. 503 follows @godaddy/terminus and Actuator (`DOWN` → 503);
 * `degraded` answers 200, as Actuator's custom states do unless mapped.
 */
export function healthResponse(
  health: ServiceHealth,
  options: Pick<HealthCheckOptions, 'exposeCauses'> = {},
): HealthResponse {
  const exposeCauses = options.exposeCauses ?? true;
  const components: Record<string, ComponentHealthBody> = {};
  for (const [name, report] of Object.entries(health.components)) {
    const body: ComponentHealthBody = {
      component: report.component,
      status: report.status,
      required: report.required,
      checkedAt: new Date(report.checkedAt).toISOString(),
      details: jsonDetails(report.details),
    };
    if (report.cause !== undefined && report.status !== 'up')
      body.cause = exposeCauses ? causeBody(report.cause) : { name: 'Error', message: 'hidden' };
    components[name] = body;
  }
  return {
    statusCode: health.ready ? 200 : 503,
    headers: { ...jsonHeaders },
    body: {
      status: health.status,
      ready: health.ready,
      checkedAt: new Date(health.checkedAt).toISOString(),
      ...(health.shuttingDown ? { shuttingDown: true as const } : {}),
      components,
    },
  };
}

/** The part of Node's `ServerResponse` (and Express's, which extends it) the handler writes to. */
export interface HealthResponseWriter {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(body: string): unknown;
}

/** What {@link readinessHandler} returns: the `(req, res)` handler, and its shutdown switch. */
export interface ReadinessHandler {
  (req: unknown, res: HealthResponseWriter): Promise<void>;
  /**
   * Begins shutdown: from now on the handler answers 503 (`shuttingDown: true`) without calling
   * the checks, also to a probe already running. Call it first on SIGTERM, then wait for the
   * endpoints to drop the pod (a few seconds), then close the server and the components.
   */
  beginShutdown(reason?: unknown): void;
  /** Whether shutdown has begun (by {@link ReadinessHandler.beginShutdown} or the `signal` option). */
  readonly shuttingDown: boolean;
  /** Aborted once shutdown begins: pass it to {@link livenessHandler} so both flip together. */
  readonly signal: AbortSignal;
}

function writeJson(res: HealthResponseWriter, statusCode: number, body: unknown): void {
  res.statusCode = statusCode;
  for (const [name, value] of Object.entries(jsonHeaders)) res.setHeader(name, value);
  res.end(JSON.stringify(body));
}

/**
 * A `(req, res)` handler for a readiness route on `node:http` or Express
 * (`app.get('/readyz', readinessHandler({...}))`): runs the checks and writes
 * {@link healthResponse} as JSON. It answers 503 from shutdown on: call its `beginShutdown()`
 * or abort the `signal` option (the library installs no signal handler). For Fastify use
 * `runHealthChecks` (with `signal`) and `healthResponse`.
 */
export function readinessHandler(
  checks: Record<string, HealthCheck | HealthCheckEntry>,
  options: HealthCheckOptions = {},
): ReadinessHandler {
  // Validated now: a bad option is a startup error, not a failing probe.
  const parsed = parseOptions('health check', healthCheckOptionsSchema, options);
  const shutdown = new AbortController();
  const signal = parsed.signal ? AbortSignal.any([parsed.signal, shutdown.signal]) : shutdown.signal;
  const handler = async (_req: unknown, res: HealthResponseWriter) => {
    const response = healthResponse(await runHealthChecks(checks, { ...parsed, signal }), parsed);
    writeJson(res, response.statusCode, response.body);
  };
  return Object.defineProperties(handler, {
    beginShutdown: { value: (reason?: unknown) => shutdown.abort(reason) },
    shuttingDown: { get: () => signal.aborted },
    signal: { value: signal },
  }) as ReadinessHandler;
}

/** Options of {@link livenessHandler}. */
export const livenessOptionsSchema = z
  .object({
    /** Aborted when shutdown begins (a readiness handler's `signal`): liveness then answers 503. */
    signal: abortSignalSchema.optional(),
  })
  .strict();

/** Input type of {@link livenessOptionsSchema}. */
export type LivenessOptions = z.input<typeof livenessOptionsSchema>;

/** The JSON body of {@link livenessHandler}. */
export type LivenessBody = { status: 'up'; live: true } | { status: 'down'; live: false; shuttingDown: true };

/**
 * A `(req, res)` liveness handler (lightship's `/live`): 200 `{ status: 'up', live: true }` while
 * the process is not shutting down, 503 once `signal` is aborted. It calls no check and no
 * backend, ever: a dependency that is down must take the pod out of the Service (readiness), not
 * restart it. A wedged process (a blocked event loop) does not answer at all, so the probe's
 * timeout catches it.
 */
export function livenessHandler(
  options: LivenessOptions = {},
): (req: unknown, res: HealthResponseWriter) => void {
  const { signal } = parseOptions('liveness', livenessOptionsSchema, options);
  return (_req, res) => {
    const body: LivenessBody = signal?.aborted
      ? { status: 'down', live: false, shuttingDown: true }
      : { status: 'up', live: true };
    writeJson(res, body.live ? 200 : 503, body);
  };
}
