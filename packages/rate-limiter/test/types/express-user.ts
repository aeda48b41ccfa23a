// An Express user's code, type-checked by express-types.test.ts with tsc (strict, nodenext): the
// README's uses of `req.rateLimit` and of an Express `res` in a handler must compile.
import express from 'express';
import { expressRateLimit } from '../../src/express.js';
import { createRateLimiter } from '../../src/index.js';

const app = express();
const limiter = createRateLimiter({ limits: [{ limit: 10, windowMs: 60_000 }] });
app.use(
  expressRateLimit({
    limiter,
    handler: (req, res, result) => {
      res.status(429).json({ key: result.key, path: req.path, seen: req.rateLimit?.remaining });
    },
    requestWasSuccessful: (_req, res) => res.statusCode < 400 && res.locals.ok !== false,
  }),
);
app.get('/', (req, res) => {
  const remaining: number | undefined = req.rateLimit?.remaining;
  res.json({ remaining, outcome: req.rateLimit?.outcome });
});
