import { describe, expect, it } from 'vitest';
import { BackendHealth, type BackendUp } from '../src/backend-health.js';

function tracked(timeoutMs = 100) {
  const downs: { operation: string; error?: unknown }[] = [];
  const ups: BackendUp[] = [];
  const health = new BackendHealth(
    timeoutMs,
    (down) => downs.push(down),
    (up) => ups.push(up),
  );
  return { health, downs, ups };
}

describe('BackendHealth', () => {
  it('is unknown (not up) until the first call is answered, which reports no recovery', () => {
    const { health, downs, ups } = tracked();
    expect(health.state).toBe('unknown');
    expect(health.up).toBe(false);
    expect(health.down).toBe(false);
    const call = health.begin('exchange', 0);
    health.check(50);
    expect(health.state).toBe('unknown');
    health.answered(call, 60);
    expect(health.state).toBe('up');
    expect(downs).toEqual([]);
    expect(ups).toEqual([]);
  });

  it('goes from unknown to down at a first call that fails or never answers', () => {
    const failing = tracked();
    failing.health.failed(failing.health.begin('subscribe', 0), new Error('ECONNREFUSED'));
    expect(failing.health.state).toBe('down');
    expect(failing.downs).toHaveLength(1);
    const hanging = tracked(100);
    hanging.health.begin('subscribe', 0);
    hanging.health.check(100);
    expect(hanging.health.state).toBe('down');
    expect(hanging.downs).toHaveLength(1);
  });

  it('is down once for an outage of many failed calls, and up once with its length and count', () => {
    const { health, downs, ups } = tracked();
    health.answered(health.begin('exchange', 0), 1);
    for (let at = 10; at < 50; at += 10)
      health.failed(health.begin('exchange', at), new Error('ECONNREFUSED'));
    expect(health.up).toBe(false);
    expect(downs).toHaveLength(1);
    expect(downs[0]!.operation).toBe('exchange');
    health.answered(health.begin('exchange', 60), 70);
    expect(ups).toEqual([{ downMs: 60, failedCalls: 4 }]);
    expect(health.up).toBe(true);
  });

  it('is down when a call goes unanswered past the bound with nothing answered meanwhile', () => {
    const { health, downs, ups } = tracked(100);
    const hung = health.begin('exchange', 0);
    health.check(99);
    expect(downs).toHaveLength(0);
    health.check(100);
    health.check(500);
    expect(downs).toEqual([{ operation: 'exchange', error: undefined, timeoutMs: 100 }]);
    health.answered(hung, 800);
    expect(ups).toEqual([{ downMs: 800, failedCalls: 0 }]);
  });

  it('a slow call is not an outage while other calls are answered', () => {
    const { health, downs } = tracked(100);
    health.begin('run maintenance', 0);
    health.answered(health.begin('exchange', 150), 160);
    health.check(200);
    expect(downs).toHaveLength(0);
    health.check(260);
    expect(downs).toHaveLength(1);
  });

  it('a call that cannot prove the backend up (a lease renewal) does not end an outage', () => {
    // With a RabbitMQ state store, renewals are answered by Redis while the broker is down: ended
    // by them, one node stop was reported once per heartbeat (3 errors in 6 s).
    const { health, downs, ups } = tracked(100);
    health.answered(health.begin('exchange', 0), 1);
    const exchange = health.begin('exchange', 10);
    health.check(110);
    expect(downs).toHaveLength(1);
    for (let at = 200; at < 1_000; at += 200) {
      health.answered(health.begin('renew leases', at), at + 1, false);
      health.check(at + 150);
    }
    expect(health.state).toBe('down');
    expect(downs).toHaveLength(1);
    expect(ups).toEqual([]);
    health.answered(exchange, 1_200);
    expect(ups).toEqual([{ downMs: 1_190, failedCalls: 0 }]);
  });

  it('a call that cannot prove the backend up does not hide an outage either', () => {
    // Heart-beating faster than the bound, such answers kept a broker that was gone 'up'.
    const { health, downs } = tracked(100);
    health.answered(health.begin('exchange', 0), 1);
    health.begin('exchange', 10);
    for (let at = 20; at <= 100; at += 40) health.answered(health.begin('renew leases', at), at + 1, false);
    health.check(110);
    expect(downs).toEqual([{ operation: 'exchange', error: undefined, timeoutMs: 100 }]);
  });
});
