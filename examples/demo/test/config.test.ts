import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DemoEnvError, readDemoEnv, serviceVariables } from '../src/config.js';

const valid = {
  REDIS_URL: 'redis://127.0.0.1:6379',
  DATABASE_URL: 'postgres://noa:secret@127.0.0.1:5432/noa',
  AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672',
};

function errorOf(env: Record<string, string>): DemoEnvError {
  try {
    readDemoEnv(env);
  } catch (error) {
    if (error instanceof DemoEnvError) return error;
    throw error;
  }
  throw new Error('expected a DemoEnvError');
}

describe('readDemoEnv', () => {
  it('is the memory mode on port 3000 with nothing set, and reads PORT', () => {
    expect(readDemoEnv({})).toEqual({ port: 3000 });
    expect(readDemoEnv({ PORT: '8080', HOME: '/root' })).toEqual({ port: 8080 });
  });

  it('reads SHUTDOWN_DELAY_MS, and names it when it is not a number of milliseconds', () => {
    expect(readDemoEnv({ SHUTDOWN_DELAY_MS: '250' })).toEqual({ port: 3000, shutdownDelayMs: 250 });
    expect(readDemoEnv({ SHUTDOWN_DELAY_MS: '' })).toEqual({ port: 3000 });
    for (const bad of ['soon', '-1', '1.5'])
      expect(() => readDemoEnv({ SHUTDOWN_DELAY_MS: bad })).toThrow(/SHUTDOWN_DELAY_MS must be/);
  });

  it('is the services mode with the three URLs as scripts/services env prints them', () => {
    expect(readDemoEnv(valid)).toEqual({
      port: 3000,
      services: { redisUrl: valid.REDIS_URL, databaseUrl: valid.DATABASE_URL, amqpUrl: valid.AMQP_URL },
    });
    expect(
      readDemoEnv({
        REDIS_URL: 'rediss://cache:6380',
        DATABASE_URL: 'postgresql://db/app',
        AMQP_URL: 'amqps://mq',
      }).services,
    ).toBeDefined();
  });

  it('names a malformed variable without echoing its value', () => {
    for (const [variable, value] of [
      ['REDIS_URL', 'http://127.0.0.1:6379'],
      ['REDIS_URL', 'not a url'],
      ['DATABASE_URL', 'mysql://noa:secret@127.0.0.1/noa'],
      ['AMQP_URL', 'rabbit.internal:5672'],
      ['PORT', 'eighty'],
      ['PORT', '70000'],
      ['PORT', '80.5'],
    ] as const) {
      const error = errorOf({ ...valid, [variable]: value });
      expect(error.variable).toBe(variable);
      expect(error.message).toMatch(new RegExp(`^${variable} must be a`));
      expect(error.message).not.toContain(value);
    }
  });

  it('for any subset of the service variables: memory when none, services when all, else an error naming a missing one', () => {
    fc.assert(
      fc.property(fc.subarray([...serviceVariables]), fc.boolean(), (set, emptyForUnset) => {
        // An empty value counts as unset.
        const env = Object.fromEntries(
          serviceVariables.flatMap((variable) =>
            set.includes(variable) ? [[variable, valid[variable]]] : emptyForUnset ? [[variable, '']] : [],
          ),
        );
        if (set.length === 0) {
          expect(readDemoEnv(env)).toEqual({ port: 3000 });
          return;
        }
        if (set.length === serviceVariables.length) {
          expect(readDemoEnv(env).services).toBeDefined();
          return;
        }
        const error = errorOf(env);
        expect(set).not.toContain(error.variable);
        const notSet = error.message.split(';')[1]!.split('(')[0]!; // "DATABASE_URL and AMQP_URL are not set "
        for (const variable of serviceVariables)
          expect(notSet.includes(variable)).toBe(!set.includes(variable));
      }),
    );
  });
});
