import { describe, expect, it } from 'vitest';
import { createRateLimiter, InvalidCheckInputError, type RateLimiter } from '../src/index.js';

const limiterOf = (): RateLimiter => createRateLimiter({ limits: [{ limit: 2, windowMs: 60_000 }] });
const twoLimits = (): RateLimiter =>
  createRateLimiter({
    limits: [
      { limit: 2, windowMs: 60_000 },
      { limit: 10, windowMs: 3_600_000 },
    ],
  });

/** Inputs a JavaScript caller can pass by mistake, with the field the error must name. */
const invalid: [string, unknown, string][] = [
  ['a missing key', { key: undefined }, 'key'],
  ['no key field', {}, 'key'],
  ['a null key', { key: null }, 'key'],
  ['a numeric key', { key: 42 }, 'key'],
  ['an empty key', { key: '' }, 'key'],
  ['an empty string', '', 'key'],
  ['undefined', undefined, 'input'],
  ['null', null, 'input'],
  ['a number', 42, 'input'],
  ['a misspelt field', { key: 'k', cots: 10 }, 'cots'],
  ['a numeric ip', { key: 'k', ip: 1 }, 'ip'],
  ['a numeric role', { key: 'k', role: 7 }, 'role'],
];

describe('check input validation', () => {
  for (const make of [limiterOf, twoLimits])
    for (const [what, input, field] of invalid) {
      it(`check() rejects ${what} naming ${field} (${make.name})`, async () => {
        const limiter = make();
        let returned: Promise<unknown> | undefined;
        expect(() => {
          returned = limiter.check(input as string);
        }).not.toThrow();
        const error = await returned!.then(
          () => undefined,
          (reason: unknown) => reason,
        );
        expect(error).toBeInstanceOf(InvalidCheckInputError);
        expect(error).toMatchObject({
          code: 'NOA_RATE_LIMIT_INVALID_INPUT',
          field,
          details: { method: 'check', field },
        });
        expect((error as Error).message).toContain(field);
        await limiter.close();
      });

      it(`checkSync() throws on ${what} (${make.name})`, async () => {
        const limiter = make();
        expect(() => limiter.checkSync(input as string)).toThrow(InvalidCheckInputError);
        await limiter.close();
      });
    }

  it('callers without a key never share a quota: nothing is counted for them', async () => {
    const limiter = limiterOf();
    for (let i = 0; i < 3; i += 1)
      await expect(limiter.check({ key: undefined as unknown as string })).rejects.toThrow(
        InvalidCheckInputError,
      );
    // The quota of a real key is whole.
    expect((await limiter.check({ key: 'k' })).remaining).toBe(1);
    await limiter.close();
  });

  it('a misspelt cost is refused, not charged 1', async () => {
    const limiter = limiterOf();
    await expect(limiter.check({ key: 'k', cots: 2 } as unknown as string)).rejects.toThrow(/"cots"/);
    expect((await limiter.check('k')).remaining).toBe(1);
    await limiter.close();
  });

  it('accepts explicit undefined for the optional fields (the middleware passes them)', async () => {
    const limiter = limiterOf();
    const result = await limiter.check({ key: 'k', ip: undefined, role: undefined, cost: undefined });
    expect(result.allowed).toBe(true);
    await limiter.close();
  });

  for (const [method, call] of [
    ['consume', (l: RateLimiter, input: unknown) => l.consume(input as string)],
    ['acquire', (l: RateLimiter, input: unknown) => l.acquire(input as string)],
    ['peek', (l: RateLimiter, input: unknown) => l.peek(input as string)],
    ['refund', (l: RateLimiter, input: unknown) => l.refund(input as string, 1)],
    ['penalize', (l: RateLimiter, input: unknown) => l.penalize(input as string, 1)],
    ['block', (l: RateLimiter, input: unknown) => l.block(input as string, 1_000)],
    ['unblock', (l: RateLimiter, input: unknown) => l.unblock(input as string)],
    ['reset', (l: RateLimiter, input: unknown) => l.reset(input as string)],
  ] as const)
    it(`${method}() rejects (never throws) a missing key, an empty key and an unknown field`, async () => {
      const limiter = limiterOf();
      const inputs: [unknown, string][] =
        method === 'reset'
          ? [
              [undefined, 'key'],
              ['', 'key'],
            ]
          : [
              [{ key: undefined }, 'key'],
              ['', 'key'],
              [undefined, 'input'],
              [{ key: 'k', cots: 1 }, 'cots'],
            ];
      for (const [input, field] of inputs) {
        let returned: Promise<unknown> | undefined;
        expect(() => {
          returned = call(limiter, input);
        }).not.toThrow();
        await expect(returned).rejects.toMatchObject({ code: 'NOA_RATE_LIMIT_INVALID_INPUT', field });
      }
      await limiter.close();
    });
});
