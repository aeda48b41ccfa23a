-- ARGV: prefix, include delayed (0/1). Removes waiting (and delayed) jobs; returns how many.
local function drainKey(key)
  local removed = 0
  while true do
    local ids = redis.call('ZRANGE', key, 0, 999)
    if #ids == 0 then return removed end
    removed = removed + removeJobs(key, ids)
  end
end
local removed = drainKey(WAIT)
for _, group in ipairs(redis.call('SMEMBERS', GROUPS)) do removed = removed + drainKey(P .. 'gw:' .. group) end
redis.call('DEL', GROUPS)
redis.call('HDEL', META, 'grouped')
if ARGV[2] == '1' then removed = removed + drainKey(DELAYED) end
return removed
