-- Claims a flow: the parent waits for its children, which are claimed like add.lua's jobs.
-- ARGV: prefix, now, outbox deadline, parent id, parent record, parent group, child count, then
-- per child: id, record, availableAt, group. Returns the tokens to publish the children's
-- messages with, in order (the parent's alone when it has none; see newToken), or 0 when any id
-- is held already.
local now = tonumber(ARGV[2])
local deadline = tonumber(ARGV[3])
local parentId = ARGV[4]
local count = tonumber(ARGV[7])
-- EXISTS in chunks of 1,000 keys: Lua's unpack fails past ~8,000 values (a large flow).
if redis.call('EXISTS', jobKey(parentId)) > 0 then return 0 end
for first = 0, count - 1, 1000 do
  local keys = {}
  for i = first, math.min(first + 999, count - 1) do keys[#keys + 1] = jobKey(ARGV[8 + i * 4]) end
  if redis.call('EXISTS', unpack(keys)) > 0 then return 0 end
end
knowGroup(ARGV[6])
if count == 0 then
  redis.call('HSET', jobKey(parentId), 'r', ARGV[5], 's', 'q')
  redis.call('ZADD', INDEX.q, fmt(now), parentId)
  redis.call('ZADD', OUTBOX, fmt(deadline), parentId)
  return {newToken(parentId)}
end
redis.call('HSET', jobKey(parentId), 'r', ARGV[5], 's', 'w', 't', 0)
redis.call('ZADD', INDEX.w, fmt(now), parentId)
redis.call('HSET', P .. 'deps:' .. parentId, '#pending', count)
local tokens = {}
for i = 0, count - 1 do
  local at = 8 + i * 4
  knowGroup(ARGV[at + 3])
  redis.call('HSET', jobKey(ARGV[at]), 'r', ARGV[at + 1], 's', 'q')
  redis.call('ZADD', INDEX.q, ARGV[at + 2], ARGV[at])
  redis.call('ZADD', OUTBOX, fmt(deadline), ARGV[at])
  tokens[#tokens + 1] = newToken(ARGV[at])
end
return tokens
