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
  /** Each component's report, under the name it was given. */
  components: Record<string, HealthReport & { required: boolean }>;
}

/**
 * Combines component reports into one service status. Pure: the reports and the time in, the
 * verdict out. `required` names which components' `down` makes the service not ready (default:
 * all of them); see {@link HealthCheckEntry.required}.
 */
export function combineHealth(
  reports: Record<string, HealthReport>,
  options: { optional?: readonly string[]; now?: number } = {},
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
  return {
    status: !ready ? 'down' : allUp ? 'up' : 'degraded',
    ready,
    checkedAt: options.now ?? Date.now(),
    components,
  };
}

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
  const { timeoutMs } = parseOptions('health check', healthCheckOptionsSchema, options);
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
  components: Record<string, ComponentHealthBody>;
}

/** What a readiness endpoint answers: 200 while ready (`up` or `degraded`), else 503. */
export interface HealthResponse {
  statusCode: 200 | 503;
  headers: Record<string, string>;
  body: ServiceHealthBody;
}

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
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
    body: {
      status: health.status,
      ready: health.ready,
      checkedAt: new Date(health.checkedAt).toISOString(),
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

/**
 * A `(req, res)` handler for a readiness route on `node:http` or Express
 * (`app.get('/readyz', readinessHandler({...}))`): runs the checks and writes
 * {@link healthResponse} as JSON. For Fastify use `runHealthChecks` and `healthResponse`.
 */
export function readinessHandler(
  checks: Record<string, HealthCheck | HealthCheckEntry>,
  options: HealthCheckOptions = {},
): (req: unknown, res: HealthResponseWriter) => Promise<void> {
  // Validated now: a bad option is a startup error, not a failing probe.
  const parsed = parseOptions('health check', healthCheckOptionsSchema, options);
  return async (_req, res) => {
    const response = healthResponse(await runHealthChecks(checks, parsed), parsed);
    res.statusCode = response.statusCode;
    for (const [name, value] of Object.entries(response.headers)) res.setHeader(name, value);
    res.end(JSON.stringify(response.body));
  };
}
