export { RateLimiterError } from './errors.js';
