import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseOptions } from '@noa/core';
import type { Request, Response } from 'express';
import { z } from 'zod';
import type { CheckInput } from '../check-input.js';
import { type ProblemOptions, quotaProblem, rateLimitHeaders, withEarlierPolicies } from '../headers.js';
import type { RateLimitResult } from '../result.js';
import { MemoryStore } from '../stores/memory-store.js';
import {
  checkInputOf,
  defaultRequestWasSuccessful,
  giveBackUnserved,
  middlewareOptionsSchemaOf,
  type RequestFacts,
  refunderFor,
  warnTrustProxy,
  warnUndefinedIp,
} from './options.js';
import { waitOutQueueDelay } from './queue-delay.js';

/** What the middleware reads from an Express request (structural, so express is not a dependency). */
export interface ExpressRequestLike extends IncomingMessage {
  ip?: string;
  path?: string;
  baseUrl?: string;
  route?: { path?: unknown };
  user?: unknown;
  /** The Express app, read for its `trust proxy` setting. */
  app?: { get(setting: string): unknown };
  /** Set by the middleware: the check's result. */
  rateLimit?: RateLimitResult;
}

declare global {
  // Express's own augmentation point: its Request extends the global Express.Request.
  namespace Express {
    interface Request {
      /** The rate-limit check's result, set by @noa/rate-limiter's `expressRateLimit`. */
      rateLimit?: RateLimitResult;
    }
  }
}

/**
 * Sends the refusal; the default writes problem+json with status 429 (403 when deny-listed, 413 for
 * a cost above what a limit can ever admit, 503 when `failMode: 'closed'` refused it because the
 * store cannot be reached: check `result.source === 'fail-mode'`). `options` carries the
 * middleware's `blockedStatus`: pass it on to {@link sendProblem} or `quotaProblem(result, options)`
 * so that a blocked key is answered as the middleware is configured to (403 under `blockedStatus: 403`).
 */
export type RefusalHandler = (
  req: Request,
  res: Response,
  result: RateLimitResult,
  options: ProblemOptions,
) => unknown;

/**
 * What the request functions (`keyBy`, `role`, `cost`, `skip`) of the Express middleware receive:
 * the {@link RequestFacts} and Express's own `request` and `response` (`req.auth` set by
 * express-jwt, `req.session`, `req.params` in a route's middleware, `res.locals`: what
 * express-rate-limit's `keyGenerator(req, res)` reads).
 */
export interface ExpressRequestFacts extends RequestFacts {
  request: Request;
  response: Response;
}

const expressOptionsSchema = middlewareOptionsSchemaOf<ExpressRequestFacts>().extend({
  /** Replaces the default problem+json refusal. Headers are already set when it runs. */
  handler: z.custom<RefusalHandler>((value) => typeof value === 'function', 'a function').optional(),
  /** Decides success for `skipSuccessfulRequests` / `skipFailedRequests`. Default: status < 400. */
  requestWasSuccessful: z
    .custom<RequestWasSuccessful>((value) => typeof value === 'function', 'a function')
    .optional(),
});

/** Whether a finished request succeeded (for `skipSuccessfulRequests` / `skipFailedRequests`). */
export type RequestWasSuccessful = (req: Request, res: Response) => boolean | Promise<boolean>;

/** Options of {@link expressRateLimit}. */
export type ExpressRateLimitOptions = z.input<typeof expressOptionsSchema>;

/** An Express (4 or 5) middleware function. */
export type ExpressMiddleware = (
  req: IncomingMessage,
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void;

/** The request facts of an Express request; `route` is computed only when read. */
class ExpressFacts implements ExpressRequestFacts {
  readonly request: Request;
  readonly response: Response;
  readonly ip: string | undefined;
  readonly method: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly user: unknown;
  readonly #req: ExpressRequestLike;

  constructor(req: ExpressRequestLike, res: ServerResponse) {
    this.#req = req;
    // The user's functions see Express's types; this file reads only what ExpressRequestLike has.
    this.request = req as Request;
    this.response = res as Response;
    this.ip = req.ip ?? req.socket.remoteAddress;
    this.method = req.method ?? 'GET';
    this.headers = req.headers;
    this.user = req.user;
  }

  // Lazy: parsing the path costs, and only per-endpoint keys and custom functions need it.
  get route(): string {
    const req = this.#req;
    const pattern = req.route?.path;
    // A RegExp or a list of paths is one route too (`/^\/reports\/\d+$/`, `/a/:id,/b/:id`): the
    // URL it matched would make each made-up id an endpoint, and a quota, of its own.
    if (typeof pattern === 'string' || pattern instanceof RegExp || Array.isArray(pattern))
      return `${req.baseUrl ?? ''}${String(pattern)}`;
    return `${req.baseUrl ?? ''}${req.path ?? req.url ?? ''}`;
  }
}

/**
 * The default refusal: problem+json, 429 (403 for deny-listed clients, 413 for a cost above a
 * limit's capacity, 503 for `failMode: 'closed'` while the store is unreachable; a blocked key's
 * is 429 `abnormal-usage-detected`, 403 under the middleware's `blockedStatus: 403`, which the
 * middleware passes as `options`); when an earlier middleware already sent the headers, it ends
 * the response.
 */
export const sendProblem = (
  _req: Request,
  res: Response,
  result: RateLimitResult,
  options: ProblemOptions = {},
): void => {
  // Too late for a status: end what was sent, so that the refused request still misses the route.
  if (res.headersSent) {
    res.end();
    return;
  }
  const problem = quotaProblem(result, options);
  res.statusCode = problem.status;
  res.setHeader('Content-Type', 'application/problem+json');
  res.end(JSON.stringify(problem));
};

/**
 * Warns (once, as a process warning) about the two `trust proxy` settings that break IP keys
 * (see {@link warnTrustProxy}), read from the Express app of the first request.
 * Returns false once there is nothing left to check.
 */
function trustProxyWarner(): (req: ExpressRequestLike) => boolean {
  let trust: unknown;
  return (req) => {
    trust ??= req.app?.get('trust proxy') ?? 'unknown';
    if (trust === true) {
      warnTrustProxy('permissive', "Express 'trust proxy'", "'loopback' or their addresses");
      return false;
    }
    if (trust !== false) return false;
    if (req.headers['x-forwarded-for'] === undefined) return true;
    warnTrustProxy('untrusted', "Express 'trust proxy'", "'loopback' or their addresses");
    return false;
  };
}

/**
 * Express middleware: checks each request with `limiter`, sets the rate-limit headers, and
 * answers 429 with a problem+json body when refused (413, without `Retry-After`, for a cost no
 * limit's capacity can ever admit; 503, without rate-limit fields, when `failMode: 'closed'`
 * refuses because the store cannot be reached). `req.ip` honours Express's
 * `trust proxy` setting, so configure that, not this (a process warning says when it looks wrong).
 * A request that reaches the same middleware twice (mounted on the app and on a router) is
 * checked once.
 */
export function expressRateLimit(options: ExpressRateLimitOptions): ExpressMiddleware {
  const parsed = parseOptions('expressRateLimit', expressOptionsSchema, options);
  const handler = parsed.handler ?? sendProblem;
  // What a handler needs to answer as this middleware is configured (a user's, or sendProblem).
  const problemOptions: ProblemOptions = Object.freeze({ blockedStatus: parsed.blockedStatus });
  let checkTrustProxy: ((req: ExpressRequestLike) => boolean) | undefined = trustProxyWarner();
  // Requests this middleware already checked: mounted twice on one path (`app.use` and a
  // router's `use`), it would count each request twice (express-rate-limit's ERR_ERL_DOUBLE_COUNT).
  const checked = new WeakSet<IncomingMessage>();
  // Once per middleware, as the trust-proxy warnings.
  let onUndefinedIp: (() => void) | undefined = () => {
    onUndefinedIp = undefined;
    warnUndefinedIp();
  };
  // A memory store decides synchronously: the request goes on in the same tick, without the two
  // promises and microtask turns of `check()` (unless `skip` or a request function is async).
  const decidesSync = parsed.limiter.store instanceof MemoryStore && parsed.skip === undefined;

  /**
   * After the check: `req.rateLimit`, the refund watch, the headers, then the refusal or the
   * queue delay. Returns true when the route is next (the caller calls `next()`, outside its
   * error handling), else a promise of whether it is (false: refused, or gone while queued).
   */
  const answer = (
    req: ExpressRequestLike,
    res: ServerResponse,
    input: CheckInput,
    result: RateLimitResult,
  ): true | Promise<boolean> => {
    req.rateLimit = result;
    const refund = refunderFor(parsed, input, result);
    if (refund !== undefined) {
      const wasSuccessful =
        parsed.requestWasSuccessful ?? ((_, done) => defaultRequestWasSuccessful(done.statusCode));
      res.once('finish', () => {
        Promise.resolve()
          .then(() => wasSuccessful(req as Request, res as Response))
          .then(refund, () => refund(false));
      });
      // Closed before the response was finished: the client went away, a failure.
      res.once('close', () => {
        if (!res.writableFinished) refund(false);
      });
      // Gone while the request was being checked: that close came before the listener.
      if (res.closed && !res.writableFinished) refund(false);
    }
    // An earlier middleware may have sent the headers (a streamed prelude) and handed on: adding
    // ours would throw, failing a request that was only to be counted (express-rate-limit skips them too).
    if (!res.headersSent) {
      // Another limiter's middleware may have checked the request already: its policies stay listed.
      const headers = withEarlierPolicies(
        rateLimitHeaders(result, parsed.headers, parsed.limiter.clock.now()),
        (name) => res.getHeader(name),
      );
      for (const name in headers) res.setHeader(name, headers[name]!);
    }
    // Awaited: an async handler's rejection goes to next(error), not to an unhandled rejection.
    if (!result.allowed)
      return Promise.resolve(handler(req as Request, res as Response, result, problemOptions)).then(
        () => false,
      );
    if (result.delayMs === 0) return true;
    // Gone during its queue delay: no route to run for nobody, and its slot is a live client's.
    return waitOutQueueDelay(res, result.delayMs).then((served) => {
      if (served) return true;
      giveBackUnserved(parsed.limiter, input, result, refund);
      return false;
    });
  };

  /** The request's check when something on the way is asynchronous (store, `skip`, a function). */
  const checkAsync = async (
    facts: ExpressFacts,
    req: ExpressRequestLike,
    res: ServerResponse,
    next: (error?: unknown) => void,
    given?: Promise<CheckInput>,
  ): Promise<void> => {
    let pending: CheckInput | Promise<CheckInput> | undefined = given;
    if (pending === undefined) {
      if (parsed.skip !== undefined && (await parsed.skip(facts))) return next();
      pending = checkInputOf(facts, parsed, onUndefinedIp);
    }
    const input = pending instanceof Promise ? await pending : pending;
    const go = answer(req, res, input, await parsed.limiter.check(input));
    if (go === true || (await go)) next();
  };

  return (incoming, res, next) => {
    if (checked.has(incoming)) return next();
    checked.add(incoming);
    const req = incoming as ExpressRequestLike;
    if (checkTrustProxy !== undefined && !checkTrustProxy(req)) checkTrustProxy = undefined;
    const facts = new ExpressFacts(req, res);
    let pending: Promise<CheckInput> | undefined;
    if (decidesSync) {
      let go: true | Promise<boolean> | undefined;
      try {
        const input = checkInputOf(facts, parsed, onUndefinedIp);
        // Request functions that answered with a promise: the rest goes the asynchronous way.
        if (input instanceof Promise) pending = input;
        else go = answer(req, res, input, parsed.limiter.checkSync(input));
      } catch (error) {
        next(error);
        return;
      }
      if (go === true) return next();
      if (go !== undefined) {
        go.then((served) => {
          if (served) next();
        }).catch(next);
        return;
      }
    }
    checkAsync(facts, req, res, next, pending).catch(next);
  };
}
