-- Records a rule's namespace (see RedisStore.recordNamespace), timed by this server's TIME: the
-- app servers' clocks may be off, and a record scored or expired by one running ahead or behind
-- would drop another's live record, or expire at once. Runs alone (no prelude).
-- KEYS: the rule's record, a sorted set of namespaces scored by the ms their keys may live until.
-- ARGV: the namespace, the ms its keys may live from now (a whole number, at least 1).
-- Raises the namespace's score to now + ttl (never lowers it), drops the namespaces whose score
-- has passed, and makes the set live as long as its longest-lived namespace (never shorter).
-- Plain commands only, so it runs on any Redis that runs the check script.
local record = KEYS[1]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[2])
local until_ms = now + ttl
local score = redis.call('ZSCORE', record, ARGV[1])
if not score or tonumber(score) < until_ms then
  redis.call('ZADD', record, until_ms, ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', record, '-inf', '(' .. now)
local left = redis.call('PTTL', record)
if left < ttl then redis.call('PEXPIRE', record, ttl) end
return now
