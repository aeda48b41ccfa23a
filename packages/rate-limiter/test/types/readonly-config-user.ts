// A user's code, type-checked by readonly-config-types.test.ts: limits, roles and lists written
// `as const`, or typed readonly (a frozen config module, `readonly LimitInput[]`), are options the
// limiter only reads. As mutable array types they were refused with TS4104 ("The type 'readonly
// [...]' is 'readonly' and cannot be assigned to the mutable type"), the complaint libraries get
// for every array option (angular-async-local-storage#470, gunshi#103).
import { createRateLimiter, type LimitInput, type RateLimiterOptions } from '../../src/index.js';

const limits = [
  { name: 'burst', algorithm: 'token-bucket', limit: 10, windowMs: 1_000, burst: 20 },
  { name: 'day', limit: 1_000, windowMs: 86_400_000 },
] as const;
const offices = ['10.0.0.0/8', '2001:db8::/32'] as const;
const frozen: readonly LimitInput[] = limits;
const blocked: ReadonlyArray<string> = ['203.0.113.0/24'];

export const asConst = createRateLimiter({ limits });
export const readonlyTyped = createRateLimiter({
  limits: frozen,
  allow: offices,
  deny: blocked,
  roles: { pro: limits, partner: frozen, admin: 'unlimited' },
});
const config = {
  prefix: 'api',
  limits: [{ limit: 5, windowMs: 1_000 }],
  roles: { admin: 'unlimited' },
} as const satisfies RateLimiterOptions;
export const wholeConfig = createRateLimiter(config);
// Mutable arrays are options still.
const mutable: LimitInput[] = [{ limit: 1, windowMs: 1_000 }];
export const plain = createRateLimiter({ limits: mutable, allow: ['127.0.0.1'] });
