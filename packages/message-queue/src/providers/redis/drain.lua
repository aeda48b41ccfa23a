-- ARGV: prefix, include delayed (0/1). Removes waiting (and delayed) jobs; returns how many.
local removed = removeAllJobs(WAIT)
for _, group in ipairs(redis.call('SMEMBERS', GROUPS)) do removed = removed + removeAllJobs(P .. 'gw:' .. group) end
redis.call('DEL', GROUPS)
redis.call('HDEL', META, 'grouped')
if ARGV[2] == '1' then removed = removed + removeAllJobs(DELAYED) end
return removed
