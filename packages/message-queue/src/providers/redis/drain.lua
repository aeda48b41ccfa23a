-- ARGV: prefix, include delayed (0/1). Removes waiting (and delayed) jobs; returns how many.
-- A flow parent waiting on a removed child is removed too (it would wait for ever), as BullMQ's
-- drain removes a parent whose pending children it removed.
local parents = {}
local function drainSet(key)
  local removed = 0
  while true do
    local ids = redis.call('ZRANGE', key, 0, 999)
    if #ids == 0 then return removed end
    local keys = {}
    for i, id in ipairs(ids) do keys[i] = P .. 'j:' .. id end
    local records = redis.call('MGET', unpack(keys))
    for i = 1, #ids do
      local raw = records[i]
      if raw and string.find(raw, '"P":', 1, true) then
        local record = decodeRecord(raw)
        if type(record.P) == 'table' then parents[record.P.i] = true end
      end
    end
    removed = removed + removeJobs(key, ids)
  end
end
local removed = drainSet(WAIT)
for _, group in ipairs(redis.call('SMEMBERS', GROUPS)) do removed = removed + drainSet(P .. 'gw:' .. group) end
redis.call('DEL', GROUPS, P .. 'credits')
redis.call('HDEL', META, 'grouped')
if ARGV[2] == '1' then removed = removed + drainSet(DELAYED) end
for parentId in pairs(parents) do
  if redis.call('ZREM', WC, parentId) == 1 then removed = removed + removeJobs(nil, {parentId}) end
end
return removed
