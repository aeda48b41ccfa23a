import { NoaError } from '@noa/core';

/** Base class of every error thrown by @noa/rate-limiter; codes start with `NOA_RATE_LIMITER_`. */
export class RateLimiterError extends NoaError {}
