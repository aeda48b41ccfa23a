// The Express middleware's entry, `@noa/rate-limiter/express`: apart from the main entry, so that
// only its users need @types/express (its declarations import Express's Request and Response, and
// add `rateLimit` to Express's Request).
export {
  type ExpressMiddleware,
  type ExpressRateLimitOptions,
  type ExpressRequestFacts,
  type ExpressRequestLike,
  expressRateLimit,
  type RefusalHandler,
  type RequestWasSuccessful,
  sendProblem,
} from './middleware/express.js';
