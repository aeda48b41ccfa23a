-- @noa/rate-limiter: one script per check, assembled from prelude.lua, one file per algorithm
-- and check.lua. Every algorithm mirrors its TypeScript twin in src/algorithms/ line for line:
-- function(state, now, cost, policy) -> allowed, remaining, resetMs, retryAfterMs, delayMs,
-- newState, ttlMs. All arithmetic stays on integers (exact in Lua's doubles below 2^53).
local ALG = {}
