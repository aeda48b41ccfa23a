import { describe, expect, it } from 'vitest';
import { fastifyRateLimit } from '../src/fastify.js';
import { createRateLimiter, quotaExceededType, quotaProblem } from '../src/index.js';

// draft-ietf-httpapi-ratelimit-headers-10, section 5.1: the quota-exceeded problem type "defines
// the extension member "violated-policies" as an array of strings". A client written to the
// draft reads that member; a camelCase one is an unknown extension it ignores.
describe('the 429 problem names the violated policies as the draft spells the member', () => {
  it('quotaProblem() writes violated-policies', async () => {
    const limiter = createRateLimiter({
      limits: [
        { name: 'burst', limit: 1, windowMs: 60_000 },
        { name: 'daily', limit: 100, windowMs: 86_400_000 },
      ],
    });
    await limiter.check('user:1');
    const problem = quotaProblem(await limiter.check('user:1')) as unknown as Record<string, unknown>;
    expect(problem.type).toBe(quotaExceededType);
    expect(problem['violated-policies']).toEqual(['burst']);
    expect(problem).not.toHaveProperty('violatedPolicies');
    await limiter.close();
  });

  it('the Fastify plugin sends it', async () => {
    const { default: Fastify } = await import('fastify');
    const app = Fastify();
    const limiter = createRateLimiter({ limits: [{ name: 'api', limit: 1, windowMs: 60_000 }] });
    await app.register(fastifyRateLimit, { limiter });
    app.get('/', async () => 'ok');
    await app.inject({ url: '/' });
    const refused = await app.inject({ url: '/' });
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toMatchObject({ 'violated-policies': ['api'] });
    expect(refused.json()).not.toHaveProperty('violatedPolicies');
    await app.close();
    await limiter.close();
  });
});
