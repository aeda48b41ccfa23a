-- ARGV: prefix, now, parent id, parent record, child count, then per child like add.lua
local now = tonumber(ARGV[2])
local parentId = ARGV[3]
local count = tonumber(ARGV[5])
-- EXISTS in chunks of 1,000 keys: Lua's unpack fails past ~8,000 values (a large flow).
if redis.call('EXISTS', P .. 'j:' .. parentId) > 0 then return 0 end
for first = 0, count - 1, 1000 do
  local keys = {}
  for i = first, math.min(first + 999, count - 1) do keys[#keys + 1] = P .. 'j:' .. ARGV[6 + i * 5] end
  if redis.call('EXISTS', unpack(keys)) > 0 then return 0 end
end
redis.call('SET', P .. 'j:' .. parentId, ARGV[4])
if count == 0 then
  local parent = decodeRecord(ARGV[4])
  enqueue(parentId, parent.p or 0, parent.g, seqBlock(1) + 1)
else
  redis.call('ZADD', WC, fmt(now), parentId)
  redis.call('HSET', P .. 'deps:' .. parentId, '#pending', count)
  local base = seqBlock(count)
  for i = 0, count - 1 do
    local at = 6 + i * 5
    redis.call('SET', P .. 'j:' .. ARGV[at], ARGV[at + 1])
    local availableAt = tonumber(ARGV[at + 4])
    if availableAt > now then
      redis.call('ZADD', DELAYED, ARGV[at + 4], ARGV[at])
      woke = true
    else
      enqueue(ARGV[at], tonumber(ARGV[at + 2]), ARGV[at + 3], base + i + 1)
    end
  end
end
finish()
return 1
