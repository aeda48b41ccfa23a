-- @noa/rate-limiter: one script per check, assembled from prelude.lua, one file per algorithm
-- and check.lua. Every algorithm mirrors its TypeScript twin in src/algorithms/ line for line.
-- Scalar algorithms: function(a, b, c, now, cost, policy) -> allowed, remaining, resetMs,
-- retryAfterMs, delayMs, new a, new b, new c (the state is up to three numbers; nil = none).
-- The sliding log: function(log, now, cost, policy) -> the same five, then the new log.
-- All arithmetic stays on integers (exact in Lua's doubles below 2^53).
local ALG = {}
