-- Renews leases (lease heartbeat). A lease is renewed only if it is still the job's current one:
-- a worker that stalled past its lease must not push the lease of the worker now running the job.
-- ARGV: prefix, leaseMs (the lease ends that long after Redis's TIME), then id, lease token. Returns {cancelled ids, lost ids}: the renewed
-- jobs cancelled while active, and the jobs not renewed (no longer active, or another lease's).
local cancelled, lost = {}, {}
local leaseUntil = fmt(redisTime() + tonumber(ARGV[2]))
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('ZSCORE', ACTIVE, id) and ownsLease(id, ARGV[i + 1]) then
    redis.call('ZADD', ACTIVE, 'XX', leaseUntil, id)
    if redis.call('ZSCORE', CANCELLED, id) then cancelled[#cancelled + 1] = id end
  else
    lost[#lost + 1] = id
  end
end
return {cancelled, lost}
