-- ARGV: prefix, now, include delayed (0/1). Forgets waiting (and delayed) jobs: their messages,
-- if any are left after the purge, are dropped when delivered. A flow parent waiting on a
-- removed child is removed too (it would wait for ever). Returns how many.
local max = ARGV[2]
if ARGV[3] == '1' then max = '+inf' end
local removed = 0
local parents = {}
while true do
  local ids = redis.call('ZRANGEBYSCORE', INDEX.q, '-inf', max, 'LIMIT', 0, 1000)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    local raw = redis.call('HGET', jobKey(id), 'r')
    if raw and string.find(raw, '"P":', 1, true) then
      local record = decodeRecord(raw)
      if type(record.P) == 'table' then parents[record.P.i] = true end
    end
  end
  removed = removed + removeJobs(ids)
end
for parentId in pairs(parents) do
  if redis.call('HGET', jobKey(parentId), 's') == 'w' then removed = removed + removeJobs({parentId}) end
end
return removed
