-- Forgets a key (RedisStore.reset): deletes its state hash and sliding-log sets, unless the call
-- reached Redis after its caller gave up. Runs alone (no prelude).
-- KEYS: the state hash and its log sets (one hash tag). ARGV[1]: the caller's deadline in Redis
-- time (ms; 0: none), as the check and adjust scripts carry it: a reset queued behind a pause
-- or a slow script, whose caller was already told it failed, deletes nothing (a block or the counts
-- taken since must not vanish later without anyone knowing).
-- Returns { now, deleted }: how many keys DEL removed, or -1 when the call expired.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local expiresAt = tonumber(ARGV[1])
if expiresAt > 0 and now > expiresAt then return { now, -1 } end
return { now, redis.call('DEL', unpack(KEYS)) }
