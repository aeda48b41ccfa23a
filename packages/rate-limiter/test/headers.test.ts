import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { quotaExceededType, quotaProblem, type RateLimitResult, rateLimitHeaders } from '../src/index.js';

const limited: RateLimitResult = {
  allowed: false,
  outcome: 'limited',
  key: 'k',
  limits: [
    {
      name: 'burst',
      windowMs: 1_000,
      allowed: false,
      limit: 20,
      remaining: 0,
      resetMs: 1_400,
      nextMs: 1_400,
      retryAfterMs: 101,
      delayMs: 0,
    },
    {
      name: 'daily',
      windowMs: 86_400_000,
      allowed: true,
      limit: 1_000,
      remaining: 996,
      resetMs: 41_233_500,
      nextMs: 41_233_500,
      retryAfterMs: 0,
      delayMs: 0,
    },
  ],
  remaining: 0,
  resetMs: 1_400,
  retryAfterMs: 101,
  delayMs: 0,
  source: 'store',
};

describe('rate-limit headers (draft-ietf-httpapi-ratelimit-headers-10)', () => {
  it('lists every policy and its state as structured-field list members, seconds rounded up', () => {
    const headers = rateLimitHeaders(limited, {}, 1_700_000_000_000);
    expect(headers).toEqual({
      'RateLimit-Policy': '"burst";q=20;w=1, "daily";q=1000;w=86400',
      RateLimit: '"burst";r=0;t=2, "daily";r=996;t=41234',
      'Retry-After': '1',
    });
  });

  it("states t from a limit's nextMs (draft-10), and from resetMs for a custom store's decision without it", () => {
    const sliding = { ...limited.limits[0]!, remaining: 0, resetMs: 1_900, nextMs: 300 };
    expect(rateLimitHeaders({ ...limited, limits: [sliding] }).RateLimit).toBe('"burst";r=0;t=1');
    const { nextMs: _omitted, ...legacy } = sliding;
    const headers = rateLimitHeaders({ ...limited, limits: [legacy as typeof sliding] });
    expect(headers.RateLimit).toBe('"burst";r=0;t=2');
  });

  it('adds the legacy X-RateLimit fields for the tightest limit on request', () => {
    const headers = rateLimitHeaders(limited, { standard: false, legacy: true }, 1_700_000_000_000);
    expect(headers).toEqual({
      'X-RateLimit-Limit': '20',
      'X-RateLimit-Remaining': '0',
      'X-RateLimit-Reset': String(Math.ceil((1_700_000_000_000 + 1_400) / 1_000)),
      'Retry-After': '1',
    });
  });

  it('describes refusals as RFC 9457 problems: 429 quota-exceeded, 403 for deny-listed clients', () => {
    expect(quotaProblem(limited)).toMatchObject({
      type: quotaExceededType,
      status: 429,
      retryAfter: 1,
      'violated-policies': ['burst'],
    });
    expect(quotaProblem({ ...limited, outcome: 'denied', limits: [], retryAfterMs: 0 })).toMatchObject({
      status: 403,
      'violated-policies': [],
    });
  });
});

describe('the README "Headers" section shows what the code sends', () => {
  const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
  const section = readme.slice(
    readme.indexOf('## Headers'),
    readme.indexOf('\n## ', readme.indexOf('## Headers') + 1),
  );
  const blocks = [...section.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map((match) => ({
    lang: match[1],
    text: match[2]!,
  }));

  it('the header example is rateLimitHeaders() of those two limits', () => {
    const example = blocks.find((block) => block.lang === '')!.text;
    const allowed: RateLimitResult = {
      ...limited,
      allowed: true,
      outcome: 'allowed',
      limits: [
        { ...limited.limits[0]!, allowed: true, remaining: 17, resetMs: 150, nextMs: 150, retryAfterMs: 0 },
        limited.limits[1]!,
      ],
      retryAfterMs: 0,
    };
    const headers = rateLimitHeaders(allowed);
    expect(example.trim()).toBe(
      `RateLimit-Policy: ${headers['RateLimit-Policy']}\nRateLimit: ${headers.RateLimit}`,
    );
  });

  it('the problem+json example is quotaProblem() of a refusal 12 s from retry', () => {
    const example = JSON.parse(blocks.find((block) => block.lang === 'json')!.text);
    expect(quotaProblem({ ...limited, retryAfterMs: 11_200 })).toEqual(example);
  });
});

describe('headers of an auto-blocked key', () => {
  // What the store reports for a blocked key whose window has room again: the block refuses it.
  const blocked: RateLimitResult = {
    ...limited,
    outcome: 'blocked',
    limits: [{ ...limited.limits[0]!, remaining: 1, resetMs: 0, retryAfterMs: 55_000 }],
    remaining: 1,
    resetMs: 0,
    retryAfterMs: 55_000,
  };

  it('show no quota left until the block ends, agreeing with Retry-After', () => {
    const headers = rateLimitHeaders(blocked, { legacy: true }, 1_700_000_000_000);
    expect(headers).toEqual({
      'RateLimit-Policy': '"burst";q=20;w=1',
      RateLimit: '"burst";r=0;t=55',
      'X-RateLimit-Limit': '20',
      'X-RateLimit-Remaining': '0',
      'X-RateLimit-Reset': String(1_700_000_000 + 55),
      'Retry-After': '55',
    });
  });
});

describe('headers of a key blocked with quota left in a long window', () => {
  // A manual block of 120 s on a key with 98 of 100 left in a day that ends in 4 h: the block,
  // not the day, is what the client waits for. `limited` of 'day' alone would say come back in 4 h.
  const day = { name: 'day', windowMs: 86_400_000, limit: 100, delayMs: 0 };
  const burst = { name: 'burst', windowMs: 10_000, limit: 5, delayMs: 0 };
  const blocked: RateLimitResult = {
    allowed: false,
    outcome: 'blocked',
    key: 'k',
    limits: [
      { ...burst, allowed: false, remaining: 3, resetMs: 5_000, nextMs: 5_000, retryAfterMs: 0 },
      { ...day, allowed: false, remaining: 98, resetMs: 14_440_000, nextMs: 14_440_000, retryAfterMs: 0 },
    ],
    remaining: 3,
    resetMs: 5_000,
    retryAfterMs: 120_000,
    delayMs: 0,
    source: 'store',
  };

  it('show every limit back at the block end, as Retry-After does', () => {
    const headers = rateLimitHeaders(blocked, { legacy: true }, 1_700_000_000_000);
    expect(headers.RateLimit).toBe('"burst";r=0;t=120, "day";r=0;t=120');
    expect(headers['Retry-After']).toBe('120');
    const single = rateLimitHeaders(
      { ...blocked, limits: [blocked.limits[1]!], remaining: 98, resetMs: 14_440_000 },
      { legacy: true },
      1_700_000_000_000,
    );
    expect(single.RateLimit).toBe('"day";r=0;t=120');
    expect(single['X-RateLimit-Reset']).toBe(String(1_700_000_000 + 120));
  });

  it('keep a later reset for a limit with nothing left after the block', () => {
    const exhausted: RateLimitResult = {
      ...blocked,
      limits: [blocked.limits[0]!, { ...blocked.limits[1]!, remaining: 0 }],
      remaining: 0,
      resetMs: 14_440_000,
    };
    const headers = rateLimitHeaders(exhausted, { legacy: true }, 1_700_000_000_000);
    expect(headers.RateLimit).toBe('"burst";r=0;t=120, "day";r=0;t=14440');
    expect(headers['X-RateLimit-Reset']).toBe(String(1_700_000_000 + 14_440));
  });
});

/** What `failMode: 'closed'` answers while the store is down: nothing known, retry in 1 s. */
const failClosed: RateLimitResult = {
  allowed: false,
  outcome: 'limited',
  key: 'k',
  limits: [],
  remaining: undefined,
  resetMs: undefined,
  retryAfterMs: 1_000,
  delayMs: 0,
  source: 'fail-mode',
};

/** What `failMode: 'open'` answers while the store is down: admitted, nothing known. */
const failOpen: RateLimitResult = { ...failClosed, allowed: true, outcome: 'allowed', retryAfterMs: 0 };

describe("failMode 'open' / 'closed' answers (source 'fail-mode'): nothing is known of the quota", () => {
  it("closed: no RateLimit, RateLimit-Policy or X-RateLimit fields, only Retry-After (the fail mode's 1 s)", () => {
    expect(rateLimitHeaders(failClosed, { standard: true, legacy: true }, 1_700_000_000_000)).toEqual({
      'Retry-After': '1',
    });
  });

  it('open: no rate-limit fields at all', () => {
    expect(rateLimitHeaders(failOpen, { standard: true, legacy: true }, 1_700_000_000_000)).toEqual({});
  });

  it('closed: a 503 Service Unavailable problem that names no policy, not a 429 quota-exceeded', () => {
    const problem = quotaProblem(failClosed);
    expect(problem).toEqual({
      type: 'about:blank',
      title: 'Service Unavailable',
      status: 503,
      detail: expect.stringMatching(/rate limiter cannot reach its store.*retry in 1 s/i),
      retryAfter: 1,
      'violated-policies': [],
    });
  });

  it("the failure-modes guide's 503 example is quotaProblem() of that refusal", () => {
    const guide = readFileSync(fileURLToPath(new URL('../docs/failure-modes.md', import.meta.url)), 'utf8');
    const section = guide.slice(guide.indexOf('## Who decided'));
    const example = /```json\n([\s\S]*?)```/.exec(section)?.[1];
    expect(JSON.parse(example ?? 'null')).toEqual(quotaProblem(failClosed));
  });

  it("a cost above a limit's capacity stays a 413 naming that limit, whatever the store", () => {
    // As the limiter answers it while the store is down: only the limit the cost is above.
    const beyond: RateLimitResult = {
      ...failClosed,
      outcome: 'exceeds-capacity',
      limits: [{ ...limited.limits[0]!, remaining: 0, resetMs: 0, retryAfterMs: Number.POSITIVE_INFINITY }],
      retryAfterMs: Number.POSITIVE_INFINITY,
    };
    expect(quotaProblem(beyond)).toMatchObject({ status: 413, 'violated-policies': ['burst'] });
    expect(rateLimitHeaders(beyond, { legacy: true })).toEqual({});
  });

  it("the local fallback's answers (source 'fallback') keep their 429 and headers: a real limiter counted them", () => {
    const local: RateLimitResult = { ...limited, source: 'fallback' };
    expect(quotaProblem(local)).toMatchObject({
      status: 429,
      type: quotaExceededType,
      'violated-policies': ['burst'],
    });
    expect(rateLimitHeaders(local, {}, 1_700_000_000_000)).toMatchObject({
      RateLimit: '"burst";r=0;t=2, "daily";r=996;t=41234',
      'Retry-After': '1',
    });
  });
});
