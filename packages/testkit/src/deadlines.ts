/**
 * The Redis deadline of a test that is not about deadlines: a cache's `operationTimeoutMs`
 * (default 500 ms), a rate limiter's `deadlineMs` (default 25 ms). With test files overlapping
 * on a loaded 2-core machine, a test process or Redis can stall past the default, and the call
 * then reads as a miss, a lost write or a fail-mode decision in a test about something else
 * (decision 013). A test about deadlines, breakers or a slow or failing Redis keeps its own.
 */
export const generousDeadlineMs = 5_000;
