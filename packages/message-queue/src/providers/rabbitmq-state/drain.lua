-- ARGV: prefix, now, include delayed (0/1). Forgets waiting (and delayed) jobs: their messages,
-- if any are left after the purge, are dropped when delivered. Returns how many.
local max = ARGV[2]
if ARGV[3] == '1' then max = '+inf' end
local removed = 0
while true do
  local ids = redis.call('ZRANGEBYSCORE', INDEX.q, '-inf', max, 'LIMIT', 0, 1000)
  if #ids == 0 then return removed end
  removed = removed + removeJobs(ids)
end
