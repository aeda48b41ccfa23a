import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express } from 'express';
import { describe, expect, it, vi } from 'vitest';
import {
  ClosedError,
  ConfigError,
  combineHealth,
  type HealthReport,
  type HealthStatus,
  healthResponse,
  livenessHandler,
  readinessHandler,
  runHealthChecks,
  TimeoutError,
} from '../src/index.js';

const report = (component: string, status: HealthStatus, cause?: unknown): HealthReport => ({
  component,
  status,
  checkedAt: 1_000,
  details: { note: component },
  ...(cause === undefined ? {} : { cause }),
});

describe('combineHealth', () => {
  it('is up and ready when every component is up', () => {
    const health = combineHealth({ a: report('a', 'up'), b: report('b', 'up') }, { now: 5 });
    expect(health).toMatchObject({ status: 'up', ready: true, checkedAt: 5 });
    expect(health.components.a).toEqual({ ...report('a', 'up'), required: true });
  });

  it('is degraded but ready when a component serves from a fallback', () => {
    const health = combineHealth({ a: report('a', 'up'), b: report('b', 'degraded') });
    expect(health).toMatchObject({ status: 'degraded', ready: true });
  });

  it('is down and not ready when a required component is down, whatever the others', () => {
    for (const other of ['up', 'degraded', 'down'] as const) {
      const health = combineHealth({ a: report('a', 'down'), b: report('b', other) });
      expect(health).toMatchObject({ status: 'down', ready: false });
    }
  });

  it('counts an optional component that is down as degraded, still ready', () => {
    const health = combineHealth(
      { db: report('db', 'up'), cache: report('cache', 'down') },
      { optional: ['cache'] },
    );
    expect(health).toMatchObject({ status: 'degraded', ready: true });
    expect(health.components.cache?.required).toBe(false);
    expect(health.components.db?.required).toBe(true);
  });

  it('is up and ready with no components', () => {
    expect(combineHealth({})).toMatchObject({ status: 'up', ready: true, components: {} });
  });
});

describe('runHealthChecks', () => {
  it('runs sync and async checks and honours required: false', async () => {
    const health = await runHealthChecks({
      limiter: () => report('rate-limiter', 'degraded'),
      db: async () => report('pg-pool', 'up'),
      queue: { check: () => report('worker', 'down'), required: false },
    });
    expect(health.status).toBe('degraded');
    expect(health.ready).toBe(true);
    expect(Object.keys(health.components)).toEqual(['limiter', 'db', 'queue']);
    expect(health.components.limiter?.component).toBe('rate-limiter');
  });

  it('turns a check that throws or rejects into its component down with the error as cause', async () => {
    const thrown = new ClosedError('Cache');
    const health = await runHealthChecks({
      cache: () => {
        throw thrown;
      },
      db: () => Promise.reject(new Error('refused')),
    });
    expect(health).toMatchObject({ status: 'down', ready: false });
    expect(health.components.cache).toMatchObject({ component: 'cache', status: 'down', cause: thrown });
    expect(health.components.db?.cause).toMatchObject({ message: 'refused' });
  });

  it('counts a check that does not answer within timeoutMs as down with a TimeoutError', async () => {
    const started = performance.now();
    const health = await runHealthChecks(
      { db: () => new Promise<HealthReport>(() => {}) },
      { timeoutMs: 50 },
    );
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(health.components.db?.status).toBe('down');
    expect(health.components.db?.cause).toBeInstanceOf(TimeoutError);
  });

  it('names a check that times out or throws by the component it reports, not by its key', async () => {
    // A report that does not come must read as the ones that do: queue:emails, not queue.
    let hang = false;
    const probe = () => (hang ? new Promise<HealthReport>(() => {}) : report('queue:emails', 'up'));
    const checks = {
      queue: probe,
      db: { check: () => new Promise<HealthReport>(() => {}), component: 'pg-pool' },
      cache: () => {
        throw new Error('closed');
      },
    };
    const first = await runHealthChecks(checks, { timeoutMs: 50 });
    expect(first.components.queue?.component).toBe('queue:emails');
    expect(first.components.db).toMatchObject({ component: 'pg-pool', status: 'down' });
    expect(first.components.cache?.component).toBe('cache');
    hang = true;
    const hung = await runHealthChecks(checks, { timeoutMs: 50 });
    expect(hung.components.queue).toMatchObject({ component: 'queue:emails', status: 'down' });
    expect(hung.components.queue?.cause).toBeInstanceOf(TimeoutError);
  });

  it('does not start a check again while its last call is unanswered: probes join it, no pile-up', async () => {
    const calls = { db: 0, cache: 0 };
    const answers: ((report: HealthReport) => void)[] = [];
    const hung = (name: 'db' | 'cache') => () => {
      calls[name] += 1;
      return new Promise<HealthReport>((resolve) => answers.push(resolve));
    };
    const checks = { db: hung('db'), cache: { check: hung('cache'), required: false } };
    for (let probe = 0; probe < 3; probe += 1) {
      const health = await runHealthChecks(checks, { timeoutMs: 20 });
      expect(health.components.db?.cause).toBeInstanceOf(TimeoutError);
      expect(health.components.cache?.status).toBe('down');
    }
    expect(calls).toEqual({ db: 1, cache: 1 });
    for (const answer of answers.splice(0)) answer(report('x', 'up'));
    await new Promise((resolve) => setTimeout(resolve, 0));
    // Once answered, the next probe asks again and gets its own answer.
    const checked = runHealthChecks(checks, { timeoutMs: 1_000 });
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(calls).toEqual({ db: 2, cache: 2 });
    for (const answer of answers.splice(0)) answer(report('x', 'degraded'));
    expect((await checked).components.db?.status).toBe('degraded');
  });

  it('gives up joining a call unanswered for 10 × timeoutMs and calls the check again', async () => {
    // A call that never settles (a leaked promise, a dead connection nothing times out) must not
    // keep the component down after the backend is back: it is joined for a while, then retried.
    let calls = 0;
    let answerNow = false;
    const check = () => {
      calls += 1;
      return answerNow ? report('db', 'up') : new Promise<HealthReport>(() => {});
    };
    expect((await runHealthChecks({ db: check }, { timeoutMs: 20 })).ready).toBe(false);
    expect((await runHealthChecks({ db: check }, { timeoutMs: 20 })).ready).toBe(false);
    expect(calls).toBe(1);
    answerNow = true;
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect((await runHealthChecks({ db: check }, { timeoutMs: 20 })).ready).toBe(true);
    expect(calls).toBe(2);
  });

  it('counts a check that returns no HealthReport as down with a TypeError, instead of rejecting', async () => {
    // From JavaScript, or a check cast to the type: a forgotten return, terminus's { status: 'ok' }.
    const checks = {
      forgot: (() => undefined) as unknown as () => HealthReport,
      terminusStyle: (() => ({ status: 'ok' })) as unknown as () => HealthReport,
      fine: () => report('fine', 'up'),
    };
    const health = await runHealthChecks(checks);
    expect(health.ready).toBe(false);
    expect(health.components.forgot).toMatchObject({ component: 'forgot', status: 'down' });
    expect(health.components.forgot?.cause).toBeInstanceOf(TypeError);
    expect(String(health.components.terminusStyle?.cause)).toMatch(/terminusStyle.*HealthReport/);
    expect(health.components.fine?.status).toBe('up');
    expect(healthResponse(health).statusCode).toBe(503);
  });

  it('rejects bad options with a ConfigError naming the field', async () => {
    await expect(runHealthChecks({}, { timeoutMs: -1 })).rejects.toThrow(ConfigError);
    expect(() => readinessHandler({}, { timeoutMs: 0 })).toThrow(/timeoutMs/);
  });
});

describe('healthResponse', () => {
  const cause = new TimeoutError('redis ping', 100);

  it('answers 200 while ready and 503 once not, with causes as name, code and message', () => {
    const degraded = healthResponse(combineHealth({ a: report('a', 'degraded', cause) }, { now: 0 }));
    expect(degraded.statusCode).toBe(200);
    expect(degraded.body).toEqual({
      status: 'degraded',
      ready: true,
      checkedAt: '1970-01-01T00:00:00.000Z',
      components: {
        a: {
          component: 'a',
          status: 'degraded',
          required: true,
          checkedAt: '1970-01-01T00:00:01.000Z',
          details: { note: 'a' },
          cause: { name: 'TimeoutError', code: 'NOA_TIMEOUT', message: cause.message },
        },
      },
    });
    const down = healthResponse(combineHealth({ a: report('a', 'down', 'plain text') }));
    expect(down.statusCode).toBe(503);
    expect(down.body.components.a?.cause).toEqual({ name: 'Error', message: 'plain text' });
    expect(down.headers['cache-control']).toBe('no-store');
  });

  it('hides cause messages with exposeCauses: false, and never sends a stack', () => {
    const response = healthResponse(combineHealth({ a: report('a', 'down', cause) }), {
      exposeCauses: false,
    });
    expect(response.body.components.a?.cause).toEqual({ name: 'Error', message: 'hidden' });
    expect(
      JSON.stringify(healthResponse(combineHealth({ a: report('a', 'down', cause) })).body),
    ).not.toContain('at ');
  });

  it('gives no cause for an up component', () => {
    const response = healthResponse(combineHealth({ a: report('a', 'up', cause) }));
    expect(response.body.components.a).not.toHaveProperty('cause');
  });
});

describe('readinessHandler', () => {
  it('serves the combined health as JSON over node:http', async () => {
    let status: HealthStatus = 'up';
    const handler = readinessHandler({
      db: () => report('db', status, status === 'down' ? cause() : undefined),
    });
    function cause() {
      return new Error('connect ECONNREFUSED');
    }
    const server = createServer((req, res) => void handler(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/readyz`;
      const up = await fetch(url);
      expect(up.status).toBe(200);
      expect(up.headers.get('content-type')).toContain('application/json');
      expect(await up.json()).toMatchObject({ status: 'up', ready: true });
      status = 'down';
      const down = await fetch(url);
      expect(down.status).toBe(503);
      expect(await down.json()).toMatchObject({
        status: 'down',
        ready: false,
        components: { db: { status: 'down', cause: { message: 'connect ECONNREFUSED' } } },
      });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('answers details JSON cannot hold (a bigint, a cycle) instead of rejecting', async () => {
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    const handler = readinessHandler({
      db: () => ({ component: 'db', status: 'up', checkedAt: 1_000, details: { rows: 12n } }),
      custom: () => ({ component: 'custom', status: 'up', checkedAt: 1_000, details: cyclic }),
    });
    let statusCode = 0;
    let body = '';
    await handler(
      {},
      {
        statusCode: 0,
        setHeader: () => {},
        end(text: string) {
          statusCode = this.statusCode;
          body = text;
        },
      },
    );
    expect(statusCode).toBe(200);
    const parsed = JSON.parse(body) as { components: Record<string, { details: Record<string, unknown> }> };
    expect(parsed.components.db?.details).toEqual({ rows: '12' });
    expect(parsed.components.custom?.details).toEqual({ unserializable: expect.stringMatching(/circular/i) });
  });
});

describe('shutdown and liveness', () => {
  async function serve(listener: Parameters<typeof createServer>[1]) {
    const server = createServer(listener);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: () => new Promise((resolve) => server.close(resolve)),
    };
  }
  async function expressServer(app: Express) {
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return {
      base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: () => new Promise((resolve) => server.close(resolve)),
    };
  }

  it('answers 503 on readiness from beginShutdown() on, without calling the checks (node:http)', async () => {
    let calls = 0;
    const readiness = readinessHandler({
      db: () => {
        calls += 1;
        return report('pg-pool', 'up');
      },
    });
    const { base, close } = await serve((req, res) => void readiness(req, res));
    try {
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      expect(readiness.shuttingDown).toBe(false);
      expect(readiness.signal.aborted).toBe(false);
      readiness.beginShutdown();
      const response = await fetch(`${base}/readyz`);
      expect(response.status).toBe(503);
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(await response.json()).toMatchObject({
        status: 'down',
        ready: false,
        shuttingDown: true,
        components: {},
      });
      expect(calls).toBe(1);
      expect(readiness.shuttingDown).toBe(true);
      expect(readiness.signal.aborted).toBe(true);
    } finally {
      await close();
    }
  });

  it('answers 503 to a probe that was in flight when shutdown began', async () => {
    let answer: ((report: HealthReport) => void) | undefined;
    const readiness = readinessHandler({
      db: () => new Promise<HealthReport>((resolve) => (answer = resolve)),
    });
    const { base, close } = await serve((req, res) => void readiness(req, res));
    try {
      const pending = fetch(`${base}/readyz`);
      await vi.waitFor(() => expect(answer).toBeTypeOf('function'), { timeout: 2_000 });
      readiness.beginShutdown();
      if (!answer) throw new Error('the check was not called');
      answer(report('pg-pool', 'up'));
      expect((await pending).status).toBe(503);
    } finally {
      await close();
    }
  });

  it('flips readiness and liveness together on an AbortSignal, over Express; liveness ignores backends', async () => {
    const shutdown = new AbortController();
    const listenersBefore = process.listenerCount('SIGTERM');
    const readiness = readinessHandler(
      { db: () => report('pg-pool', 'down', new Error('ECONNREFUSED')) },
      { signal: shutdown.signal },
    );
    const liveness = livenessHandler({ signal: readiness.signal });
    // The library installs no process signal handler: the app decides when shutdown begins.
    expect(process.listenerCount('SIGTERM')).toBe(listenersBefore);
    const app = express();
    app.get('/readyz', readiness);
    app.get('/livez', liveness);
    const { base, close } = await expressServer(app);
    try {
      // A backend that is down fails readiness, never liveness (a restart would not bring it back).
      expect((await fetch(`${base}/readyz`)).status).toBe(503);
      const live = await fetch(`${base}/livez`);
      expect(live.status).toBe(200);
      expect(live.headers.get('content-type')).toContain('application/json');
      expect(await live.json()).toEqual({ status: 'up', live: true });
      shutdown.abort();
      expect(readiness.shuttingDown).toBe(true);
      expect(await (await fetch(`${base}/readyz`)).json()).toMatchObject({
        shuttingDown: true,
        ready: false,
      });
      const dying = await fetch(`${base}/livez`);
      expect(dying.status).toBe(503);
      expect(await dying.json()).toEqual({ status: 'down', live: false, shuttingDown: true });
    } finally {
      await close();
    }
  });

  it('runHealthChecks with an aborted signal calls no check and is not ready', async () => {
    let calls = 0;
    const health = await runHealthChecks(
      {
        db: () => {
          calls += 1;
          return report('pg-pool', 'up');
        },
      },
      { signal: AbortSignal.abort() },
    );
    expect(calls).toBe(0);
    expect(health).toMatchObject({ status: 'down', ready: false, shuttingDown: true, components: {} });
    const response = healthResponse(health);
    expect(response.statusCode).toBe(503);
    expect(response.body.shuttingDown).toBe(true);
    expect(combineHealth({ a: report('a', 'up') }, { shuttingDown: true })).toMatchObject({
      status: 'down',
      ready: false,
      shuttingDown: true,
    });
    // No `shuttingDown` key while running, so bodies stay as they were.
    expect(await runHealthChecks({})).not.toHaveProperty('shuttingDown');
  });

  it('rejects a signal that is not an AbortSignal with a ConfigError naming the field', () => {
    expect(() => readinessHandler({}, { signal: {} as AbortSignal })).toThrow(/signal/);
    expect(() => livenessHandler({ signal: 'no' as unknown as AbortSignal })).toThrow(ConfigError);
  });
});
